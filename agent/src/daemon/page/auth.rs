//! Who may see the page: anyone on a loopback listener without a token (the same trust as
//! `/metrics`), else only a request carrying `metrics.page.token`, as `Authorization: Bearer
//! <token>` (what the page's script sends) or `?token=<token>` (what an engineer types once
//! into the address bar). The token is compared in constant time.

/// Whether a request with `authorization` (the header's value, if any) and `query` (after
/// `?`, if any) may see the page when `token` is configured.
pub fn allowed(token: Option<&str>, authorization: Option<&str>, query: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let bearer = authorization
        .and_then(|a| a.trim().strip_prefix("Bearer "))
        .map(str::trim);
    let in_query = query.and_then(|q| param(q, "token"));
    [bearer, in_query]
        .into_iter()
        .flatten()
        .any(|given| same(given.as_bytes(), token.as_bytes()))
}

/// The value of `name` in a query string (`a=1&b=2`), undecoded: the values this page reads
/// (tokens, series filters of plain names) need no decoding beyond `+` and `%20`-free text;
/// [`decode`] handles the filter.
pub fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Percent-decoding of a query value (`+` is a space); `None` when it is not UTF-8.
pub fn decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Equal bytes, in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef";

    #[test]
    fn without_a_token_configured_everyone_may_look() {
        assert!(allowed(None, None, None));
    }

    #[test]
    fn a_configured_token_is_needed_in_the_header_or_the_query() {
        let t = Some(TOKEN);
        assert!(!allowed(t, None, None));
        assert!(!allowed(t, Some("Bearer wrong"), Some("q=x")));
        assert!(!allowed(t, Some("Basic 0123456789abcdef"), None));
        assert!(!allowed(t, None, Some("token=0123456789abcde")));
        assert!(allowed(t, Some("Bearer 0123456789abcdef"), None));
        assert!(allowed(t, None, Some("q=pump&token=0123456789abcdef")));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(decode("pump%2D1+temp").as_deref(), Some("pump-1 temp"));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("50%").as_deref(), Some("50%"));
        assert_eq!(decode("%C3%A9").as_deref(), Some("é"));
    }
}
