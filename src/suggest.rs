//! "Did you mean": the known name closest to a mistyped one, for every refusal of a name the
//! binary does not know (a command, a client command's option, a setting's key in config.json,
//! its flag or its environment variable).

/// The name in `known` closest to `word`, when it is likely what was meant: at most two edits
/// away, and fewer edits than `word` has characters (so `x` suggests nothing). Of names as
/// close, the first.
pub(crate) fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|name| (edit_distance(word, name), name))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= 2 && *d < word.chars().count())
        .map(|(_, name)| name)
}

/// The edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between the first i characters of a and the first j of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_a_typo_away_is_suggested_and_a_far_one_is_not() {
        let known = ["port", "host", "auth_token", "target"];
        assert_eq!(closest("prot", known), Some("port"), "two letters swapped");
        assert_eq!(closest("hots", known), Some("host"));
        assert_eq!(closest("auth_tokn", known), Some("auth_token"));
        assert_eq!(closest("targt", known), Some("target"));
        assert_eq!(closest("teleport", known), None);
        assert_eq!(
            closest("x", ["y"]),
            None,
            "one letter is no typo of another"
        );
        assert_eq!(closest("ab", ["abcd"]), None, "as many edits as letters");
    }
}
