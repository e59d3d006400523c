//! Topic-exchange pattern matching, with RabbitMQ's semantics.
//!
//! A routing key and a binding pattern are dot-separated words. In a pattern, `*` matches
//! exactly one word and `#` matches zero or more words. Matching is a small backtracking
//! walk over the words; it must stay deterministic and allocation-free per call because it
//! runs inside the state machine's apply for every publish to a topic exchange.

/// Returns true when `routing_key` matches the binding `pattern`.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pattern_words: Vec<&str> = pattern.split('.').collect();
    let key_words: Vec<&str> = routing_key.split('.').collect();
    match_words(&pattern_words, &key_words)
}

fn match_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => {
            // `#` swallows zero words, or one word and stays in place.
            if match_words(rest, key) {
                return true;
            }
            match key.split_first() {
                Some((_, key_rest)) => match_words(pattern, key_rest),
                None => false,
            }
        }
        Some((word, rest)) => match key.split_first() {
            Some((key_word, key_rest)) => {
                (*word == "*" || word == key_word) && match_words(rest, key_rest)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn exact_words_match_only_themselves() {
        assert!(topic_matches("a.b.c", "a.b.c"));
        assert!(!topic_matches("a.b.c", "a.b"));
        assert!(!topic_matches("a.b", "a.b.c"));
        assert!(!topic_matches("a.b.c", "a.x.c"));
    }

    #[test]
    fn star_matches_exactly_one_word() {
        assert!(topic_matches("*.orange.*", "quick.orange.rabbit"));
        assert!(!topic_matches("*.orange.*", "orange.rabbit"));
        assert!(!topic_matches("*.orange.*", "quick.orange.male.rabbit"));
        assert!(topic_matches("*", ""));
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        assert!(topic_matches("lazy.#", "lazy"));
        assert!(topic_matches("lazy.#", "lazy.orange.male.rabbit"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("#", "a.b.c"));
        assert!(topic_matches("a.#.c", "a.c"));
        assert!(topic_matches("a.#.c", "a.x.y.c"));
        assert!(!topic_matches("a.#.c", "a.x.y.d"));
        assert!(topic_matches("#.#", "a"));
        assert!(topic_matches("*.#.*", "a.b"));
        assert!(!topic_matches("*.#.*", "a"));
    }

    #[test]
    fn empty_words_are_words() {
        // RabbitMQ treats "a..b" as three words, the middle one empty.
        assert!(topic_matches("a.*.b", "a..b"));
        assert!(!topic_matches("a.b", "a..b"));
    }
}
