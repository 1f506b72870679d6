//! The http(s) URLs a `[[source]]` table names (`base_url`, Intune's `graph_url` and
//! `token_url`, the file source's `url`), parsed and checked in one place, so that every
//! source refuses the same mistakes in the same words, and none of them repeats the value:
//! a URL may carry user-info credentials (`https://user:password@host`).
//!
//! What only one source asks of its URL (Jamf School's optional `/api`, Kelvin's
//! `/ucsschool/kelvin/`) stays in that source, built on these functions.

use url::Url;

/// Why the URL under a config key is unusable. The text names the key and what is wrong with
/// it, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` is not a usable http(s) URL: {problem}")]
pub struct UrlKeyError {
    pub key: &'static str,
    pub problem: UrlProblem,
}

/// What is wrong with a configured URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    // The most common slip (`jamf.example.de`); `url` would only say "relative URL without a
    // base", which does not tell what to add.
    #[error("it has no scheme; write it with `https://`")]
    NoScheme,
    // `url`'s own parse errors say what is wrong without quoting the input.
    #[error("{0}")]
    Parse(url::ParseError),
    // The scheme is what to fix, so it is shown. It ends at the first `:`, so it never holds
    // a password: at most the user name of a URL written without `https://`.
    #[error("scheme `{0}` is not http or https")]
    Scheme(String),
    #[error("it must not have a query or fragment")]
    QueryOrFragment,
}

impl UrlKeyError {
    /// The error for a URL under `key` that does not parse, also after a connector joined its
    /// own path onto the checked URL.
    pub(crate) fn parse(key: &'static str, error: url::ParseError) -> UrlKeyError {
        let problem = match error {
            url::ParseError::RelativeUrlWithoutBase => UrlProblem::NoScheme,
            other => UrlProblem::Parse(other),
        };
        UrlKeyError { key, problem }
    }
}

/// The http(s) URL configured under `key`, for a URL that is fetched as it is written, such
/// as the file source's download link, whose query belongs to it.
pub(crate) fn http_url(key: &'static str, text: &str) -> Result<Url, UrlKeyError> {
    let url = Url::parse(text.trim()).map_err(|error| UrlKeyError::parse(key, error))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlKeyError {
            key,
            problem: UrlProblem::Scheme(url.scheme().to_string()),
        });
    }
    Ok(url)
}

/// The http(s) URL configured under `key`, for a URL the connector builds its requests from.
/// A query or fragment is refused: joining a path onto the URL would drop it silently, and the
/// connector sends its own query parameters.
pub(crate) fn endpoint_url(key: &'static str, text: &str) -> Result<Url, UrlKeyError> {
    let url = http_url(key, text)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(UrlKeyError {
            key,
            problem: UrlProblem::QueryOrFragment,
        });
    }
    Ok(url)
}

/// `endpoint_url` ending in a slash, so that `join("api/...")` appends to its path instead of
/// replacing the last segment (an on-premise server may live under a path such as `/jamf`).
pub(crate) fn base_url(key: &'static str, text: &str) -> Result<Url, UrlKeyError> {
    let mut url = endpoint_url(key, text)?;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(result: Result<Url, UrlKeyError>) -> UrlProblem {
        let error = result.unwrap_err();
        assert_eq!(error.key, "base_url");
        error.problem
    }

    #[test]
    fn a_base_url_gets_a_trailing_slash_and_keeps_its_path() {
        for (text, expected) in [
            ("https://jamf.example", "https://jamf.example/"),
            ("https://jamf.example/", "https://jamf.example/"),
            ("https://jamf.example/jamf", "https://jamf.example/jamf/"),
            ("https://jamf.example/jamf/", "https://jamf.example/jamf/"),
            (
                " http://jamf.example:8443/jamf \n",
                "http://jamf.example:8443/jamf/",
            ),
        ] {
            let url = base_url("base_url", text).unwrap();
            assert_eq!(url.as_str(), expected, "{text:?}");
        }
        let joined = base_url("base_url", "https://jamf.example/jamf")
            .unwrap()
            .join("api/v1/sites")
            .unwrap();
        assert_eq!(joined.as_str(), "https://jamf.example/jamf/api/v1/sites");
    }

    #[test]
    fn an_endpoint_url_keeps_its_path_as_written() {
        let url = endpoint_url("token_url", "https://login.example/tenant/token").unwrap();
        assert_eq!(url.as_str(), "https://login.example/tenant/token");
    }

    #[test]
    fn schemes_other_than_http_and_https_are_refused_naming_the_scheme() {
        for text in [
            "ftp://jamf.example",
            "file:///etc/passwd",
            "ldaps://ucs.example",
        ] {
            for check in [http_url, endpoint_url, base_url] {
                let scheme = text.split(':').next().unwrap().to_string();
                assert_eq!(problem(check("base_url", text)), UrlProblem::Scheme(scheme));
            }
        }
        assert!(http_url("base_url", "HTTPS://jamf.example").is_ok());
    }

    #[test]
    fn a_query_or_fragment_is_refused_where_the_connector_builds_the_requests() {
        for text in [
            "https://jamf.example/?a=1",
            "https://jamf.example/jamf#top",
            "https://jamf.example?",
        ] {
            assert_eq!(
                problem(endpoint_url("base_url", text)),
                UrlProblem::QueryOrFragment,
                "{text}"
            );
            assert_eq!(
                problem(base_url("base_url", text)),
                UrlProblem::QueryOrFragment,
                "{text}"
            );
        }
        let download = http_url("url", "https://cloud.example/export.csv?token=1").unwrap();
        assert_eq!(download.query(), Some("token=1"));
    }

    #[test]
    fn a_url_without_scheme_or_host_is_refused() {
        assert_eq!(
            problem(base_url("base_url", "jamf.example.de")),
            UrlProblem::NoScheme
        );
        assert_eq!(
            problem(base_url("base_url", "https://")),
            UrlProblem::Parse(url::ParseError::EmptyHost)
        );
        assert_eq!(problem(base_url("base_url", "")), UrlProblem::NoScheme);
    }

    #[test]
    fn the_text_names_the_key_and_the_problem() {
        for (result, expected) in [
            (
                base_url("base_url", "ftp://jamf.example"),
                "`base_url` is not a usable http(s) URL: scheme `ftp` is not http or https",
            ),
            (
                endpoint_url("token_url", "https://login.example/?a=1"),
                "`token_url` is not a usable http(s) URL: it must not have a query or fragment",
            ),
            (
                http_url("url", "cloud.example/export.csv"),
                "`url` is not a usable http(s) URL: it has no scheme; write it with `https://`",
            ),
            (
                base_url("graph_url", "https://graph.example:99999"),
                "`graph_url` is not a usable http(s) URL: invalid port number",
            ),
        ] {
            assert_eq!(result.unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn user_info_credentials_never_reach_the_error_text() {
        for text in [
            "ftp://admin:geheim@jamf.example",
            "https://admin:geheim@jamf.example/?a=1",
            "https://admin:geheim@jamf.example/#geheim",
            "https://admin:geheim@jamf.example:99999",
            "https://admin:geheim@",
            "admin:geheim@jamf.example",
            "admin:geheim@jamf.example:8443",
        ] {
            for check in [http_url, endpoint_url, base_url] {
                if let Err(error) = check("base_url", text) {
                    let shown = format!("{error} {error:?}");
                    assert!(!shown.contains("geheim"), "{text}: {shown}");
                }
            }
            assert!(base_url("base_url", text).is_err(), "{text}");
        }
    }
}
