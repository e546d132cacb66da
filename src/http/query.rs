//! Query strings as Azure clients send them: any order, percent-encoded commas (`%2C`), `+` for space,
//! parameter names matched case-insensitively, unknown parameters ignored.

use percent_encoding::percent_decode_str;

#[derive(Debug, Default, Clone)]
pub struct QueryParams(Vec<(String, String)>);

fn decode_component(raw: &str) -> String {
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (
                    decode_component(key).to_ascii_lowercase(),
                    decode_component(value),
                )
            })
            .collect();
        QueryParams(pairs)
    }

    /// The last value given for `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// A `true`/`false` parameter (any case), `default` when absent; otherwise the message to refuse
    /// it with.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(format!("'{key}' must be true or false, not '{other}'")),
        }
    }

    /// A comma-separated parameter as its non-empty, trimmed items; `None` when absent.
    pub fn list(&self, key: &str) -> Option<Vec<&str>> {
        self.get(key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_commas_case_and_order_do_not_matter() {
        let q = QueryParams::parse(Some(
            "features=caption%2Cread%2csmartCrops&Smartcrops-Aspect-Ratios=0.9%2C1.33&api-version=2023-10-01&key1=value1",
        ));
        assert_eq!(
            q.list("features").unwrap(),
            vec!["caption", "read", "smartCrops"]
        );
        assert_eq!(
            q.list("smartcrops-aspect-ratios").unwrap(),
            vec!["0.9", "1.33"]
        );
        assert_eq!(q.get("API-VERSION"), Some("2023-10-01"));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn empty_items_and_plus_signs_are_handled() {
        let q = QueryParams::parse(Some("features=objects,,people,&language=e+n&flag"));
        assert_eq!(q.list("features").unwrap(), vec!["objects", "people"]);
        assert_eq!(q.get("language"), Some("e n"));
        assert_eq!(q.get("flag"), Some(""));
        assert!(QueryParams::parse(None).list("features").is_none());
    }

    #[test]
    fn flags_take_true_or_false_in_any_case_and_refuse_the_rest() {
        let q = QueryParams::parse(Some("a=TRUE&b=false&c=yes"));
        assert_eq!(q.flag("a", false), Ok(true));
        assert_eq!(q.flag("b", true), Ok(false));
        assert_eq!(q.flag("missing", true), Ok(true));
        assert_eq!(
            q.flag("c", false),
            Err("'c' must be true or false, not 'yes'".to_string())
        );
    }
}
