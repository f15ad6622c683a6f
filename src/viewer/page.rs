//! The page for one identifier: `assets/viewer.html` with its links filled in and the
//! identifier handed to the script as data.
//!
//! The identifier never reaches the HTML or the script as markup or code. It is written once,
//! into a `<script type="application/json">` element (not executed), as a JSON string in which
//! every character other than ASCII letters, digits and `-._~/%` is a `\uXXXX` escape, so no
//! `<`, `>`, `&`, quote or line separator can end the element or an attribute. The script reads
//! it and shows it with `textContent`. The `Content-Security-Policy` allows scripts from this
//! server only (no inline script), as a second line of defence.
//!
//! The script gets three values: `id` (the identifier as text, percent-decoded from the path),
//! `query` (its bytes percent-encoded again for a query-string value: every byte but ASCII
//! letters, digits and `-._~/`, so `&`, `+`, `#` and `%` keep their meaning) and `root` (`../`
//! once per path segment after `/viewer/`: the server's root relative to the page).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};

use super::assets::{self, OSD_VERSION};
use crate::SERVER_HEADER;
use crate::http::Response;

/// The page, with `{OSD}`, `{OSD_LICENSE}`, `{OSD_VERSION}`, `{SCRIPT}` and `{CONFIG}` to fill.
const TEMPLATE: &str = include_str!("assets/viewer.html");

/// Bytes left as they are in the identifier's query-string form.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Scripts from this server only; tiles and descriptors from anywhere (a `BASE_URL` may point
/// IIIF ids at another host); the page's own `<style>`.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
                   img-src * data: blob:; connect-src *; base-uri 'none'; form-action 'none'";

/// A JSON string literal whose only raw characters are ASCII letters, digits and `-._~/%`.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || "-._~/%".contains(c) {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.push('"');
    out
}

/// The page for the path after `/viewer/` (`rest`, non-empty, percent-encoded as sent).
pub fn page(rest: &str) -> Response {
    let bytes: Vec<u8> = percent_decode_str(rest).collect();
    let id = String::from_utf8_lossy(&bytes);
    let query = percent_encode(&bytes, QUERY_VALUE).to_string();
    let root = "../".repeat(1 + rest.matches('/').count());
    let config = format!(
        "{{\"id\":{},\"query\":{},\"root\":{}}}",
        json_string(&id),
        json_string(&query),
        json_string(&root)
    );
    let [osd, licence, script] = assets::names();
    let html = TEMPLATE
        .replace("{OSD}", &format!("{root}viewer/assets/{osd}"))
        .replace("{OSD_LICENSE}", &format!("{root}viewer/assets/{licence}"))
        .replace("{OSD_VERSION}", OSD_VERSION)
        .replace("{SCRIPT}", &format!("{root}viewer/assets/{script}"))
        .replace("{CONFIG}", &config);
    let mut r = Response::empty();
    r.push("Server", SERVER_HEADER);
    r.push("Content-Type", "text/html; charset=utf-8");
    r.push("Cache-Control", "no-cache");
    r.push("Content-Security-Policy", CSP);
    r.push("X-Content-Type-Options", "nosniff");
    r.body = html.into();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(rest: &str) -> String {
        String::from_utf8(page(rest).body.to_vec()).unwrap()
    }

    /// The JSON of the config element.
    fn config(rest: &str) -> String {
        let h = html(rest);
        let start = h.find("id=\"viewer-config\">").unwrap() + "id=\"viewer-config\">".len();
        let end = start + h[start..].find("</script>").unwrap();
        h[start..end].to_string()
    }

    #[test]
    fn markup_in_an_identifier_stays_data() {
        for rest in [
            "%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
            "\"><script>alert(1)</script>",
            "a%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "'onload='alert(1)",
            "%E2%80%A8%E2%80%A9&amp;",
        ] {
            let h = html(rest);
            assert_eq!(h.matches("<script").count(), 3, "{rest}: {h}");
            assert_eq!(h.matches("</script>").count(), 3, "{rest}");
            let c = config(rest);
            assert!(
                !c.contains(['<', '>', '&', '\'', '\u{2028}', '\u{2029}']),
                "{rest}: {c}"
            );
            assert!(!h.contains("alert(1)</"), "{rest}");
        }
    }

    #[test]
    fn the_identifier_is_decoded_for_display_and_encoded_for_queries() {
        assert_eq!(
            config("a%20b%2Bc&d.tif"),
            "{\"id\":\"a\\u0020b\\u002bc\\u0026d.tif\",\"query\":\"a%20b%2Bc%26d.tif\",\"root\":\"../\"}"
        );
        // A `+` in a path is a plus (not a space), and `#`, `?`, `%` stay escaped.
        assert!(config("x+y%23%3F%25.tif").contains("\"query\":\"x%2By%23%3F%25.tif\""));
    }

    #[test]
    fn non_utf8_and_astral_identifiers_survive() {
        let c = config("%FF%F0%9F%98%80.tif");
        assert!(c.contains("\"query\":\"%FF%F0%9F%98%80.tif\""), "{c}");
        assert!(c.contains("\\ufffd\\ud83d\\ude00.tif"), "{c}");
    }

    #[test]
    fn links_are_relative_to_the_pages_depth() {
        assert!(config("a.tif").ends_with("\"root\":\"../\"}"));
        assert!(config("dir/sub/a.tif").ends_with("\"root\":\"../../../\"}"));
        // An encoded slash is not a path segment for the browser.
        assert!(config("dir%2Fa.tif").ends_with("\"root\":\"../\"}"));
        let h = html("dir/a.tif");
        let [osd, _, script] = assets::names();
        assert!(h.contains(&format!("src=\"../../viewer/assets/{osd}\"")));
        assert!(h.contains(&format!("src=\"../../viewer/assets/{script}\"")));
    }

    #[test]
    fn the_page_allows_no_inline_script() {
        let r = page("a.tif");
        let csp = r.header("Content-Security-Policy").unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    }
}
