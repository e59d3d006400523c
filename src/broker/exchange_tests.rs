//! Routing tests: each exchange type, exchange-to-exchange bindings, cycles, alternates.

use super::*;

fn bind(x: &mut Exchange, destination: Destination, routing_key: &str) {
    x.bindings.push(Binding::new(
        destination,
        routing_key.to_string(),
        Vec::new(),
    ));
}

fn q(name: &str) -> Destination {
    Destination::Queue(name.to_string())
}

fn routed(xs: &BTreeMap<String, Exchange>, x: &str, key: &str) -> Vec<String> {
    route(xs, x, key, &[]).into_iter().collect()
}

#[test]
fn direct_fanout_and_topic_route_by_their_rules() {
    let mut xs = BTreeMap::new();
    let mut direct = Exchange::new(ExchangeKind::Direct);
    bind(&mut direct, q("a"), "k");
    bind(&mut direct, q("b"), "other");
    let mut fanout = Exchange::new(ExchangeKind::Fanout);
    bind(&mut fanout, q("a"), "ignored");
    bind(&mut fanout, q("b"), "");
    let mut topic = Exchange::new(ExchangeKind::Topic);
    bind(&mut topic, q("a"), "*.error");
    bind(&mut topic, q("b"), "app.#");
    xs.insert("d".to_string(), direct);
    xs.insert("f".to_string(), fanout);
    xs.insert("t".to_string(), topic);
    assert_eq!(routed(&xs, "d", "k"), vec!["a"]);
    assert_eq!(routed(&xs, "d", "none"), Vec::<String>::new());
    assert_eq!(routed(&xs, "f", "whatever"), vec!["a", "b"]);
    assert_eq!(routed(&xs, "t", "app.error"), vec!["a", "b"]);
    assert_eq!(routed(&xs, "t", "db.error"), vec!["a"]);
}

#[test]
fn headers_exchange_matches_all_or_any() {
    let mut x = Exchange::new(ExchangeKind::Headers);
    let pairs = vec![
        ("format".to_string(), HeaderValue::Str("pdf".into())),
        ("size".to_string(), HeaderValue::Int(3)),
    ];
    x.bindings
        .push(Binding::new(q("all"), String::new(), pairs.clone()));
    let mut any = pairs;
    any.push(("x-match".to_string(), HeaderValue::Str("any".into())));
    x.bindings.push(Binding::new(q("any"), String::new(), any));
    let xs = BTreeMap::from([("h".to_string(), x)]);
    let both = [
        ("size".to_string(), HeaderValue::Int(3)),
        ("format".to_string(), HeaderValue::Str("pdf".into())),
    ];
    let one = [("format".to_string(), HeaderValue::Str("pdf".into()))];
    let wrong_type = [("size".to_string(), HeaderValue::Str("3".into()))];
    assert_eq!(
        route(&xs, "h", "", &both).into_iter().collect::<Vec<_>>(),
        vec!["all", "any"]
    );
    assert_eq!(
        route(&xs, "h", "", &one).into_iter().collect::<Vec<_>>(),
        vec!["any"]
    );
    assert!(route(&xs, "h", "", &wrong_type).is_empty());
}

#[test]
fn x_match_any_is_read_from_binding_arguments() {
    let mut args = FieldTable::default();
    args.insert("x-match".into(), AMQPValue::LongString("any".into()));
    args.insert("k".into(), AMQPValue::LongInt(1));
    let (match_all, pairs) = headers_binding_args(&field_table_pairs(&args));
    assert!(!match_all);
    assert_eq!(pairs, vec![("k".to_string(), HeaderValue::Int(1))]);
}

#[test]
fn exchange_bindings_chain_and_cycles_terminate_with_each_queue_once() {
    let mut a = Exchange::new(ExchangeKind::Fanout);
    bind(&mut a, Destination::Exchange("b".into()), "");
    bind(&mut a, q("q1"), "");
    let mut b = Exchange::new(ExchangeKind::Fanout);
    bind(&mut b, Destination::Exchange("a".into()), "");
    bind(&mut b, q("q1"), "");
    bind(&mut b, q("q2"), "");
    let xs = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
    assert_eq!(routed(&xs, "a", ""), vec!["q1", "q2"]);
}

#[test]
fn alternate_exchange_takes_only_unroutable_publishes() {
    let mut main = Exchange::new(ExchangeKind::Direct);
    main.alternate_exchange = Some("ae".into());
    bind(&mut main, q("known"), "k");
    let mut ae = Exchange::new(ExchangeKind::Fanout);
    bind(&mut ae, q("unrouted"), "");
    let xs = BTreeMap::from([("main".to_string(), main), ("ae".to_string(), ae)]);
    assert_eq!(routed(&xs, "main", "k"), vec!["known"]);
    assert_eq!(routed(&xs, "main", "nope"), vec!["unrouted"]);
}
