//! The person's pages in the person's language: one message catalogue per language
//! (`locales/<lang>/mole.ftl`, Fluent), chosen per request by `?lang=` (remembered in the
//! `mole_lang` cookie), then that cookie, then `Accept-Language`, then English.
//!
//! Every user-facing string of the public pages (the upload page, the case page and its live
//! panel, "my cases", `/model`, the error pages) and of the case JSON comes from the catalogue;
//! the clinic's pages under `/admin` are for staff and stay in English. A message missing in a
//! language falls back to English; one missing in English shows its id and is logged (the tests
//! render every page in every language and fail on either).

use std::sync::LazyLock;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

/// The languages of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    /// English (the source language and the fallback).
    #[default]
    En,
    /// French.
    Fr,
    /// Dutch.
    Nl,
}

impl Lang {
    /// Every language, in the order of the page's switch.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Fr, Lang::Nl];

    /// The language code (`lang` attribute, `?lang=`, the cookie).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::Nl => "nl",
        }
    }

    /// The language's name in itself, for the switch.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Fr => "Français",
            Lang::Nl => "Nederlands",
        }
    }

    /// The language of a code or a tag (`fr`, `fr-BE`, `NL`), if the catalogue has it.
    pub fn parse(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Self::ALL.into_iter().find(|l| l.code() == primary)
    }

    /// The language's place in [`Lang::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The first language of an `Accept-Language` header the catalogue has, by quality.
    pub fn from_accept_language(value: &str) -> Option<Self> {
        let mut offered: Vec<(f32, usize, Lang)> = value
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut pieces = part.split(';');
                let lang = Lang::parse(pieces.next()?)?;
                let q = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                (q > 0.0).then_some((q, i, lang))
            })
            .collect();
        offered.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        offered.first().map(|o| o.2)
    }
}

/// Name of the cookie that remembers the language chosen on the page.
pub const LANG_COOKIE: &str = "mole_lang";

struct Catalogue {
    bundles: Vec<FluentBundle<FluentResource>>,
}

const SOURCES: [(Lang, &str); 3] = [
    (Lang::En, include_str!("../../../locales/en/mole.ftl")),
    (Lang::Fr, include_str!("../../../locales/fr/mole.ftl")),
    (Lang::Nl, include_str!("../../../locales/nl/mole.ftl")),
];

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    let bundles = SOURCES
        .iter()
        .map(|(lang, source)| {
            let resource =
                FluentResource::try_new((*source).to_owned()).unwrap_or_else(|(_, e)| {
                    panic!("locales/{}/mole.ftl does not parse: {e:?}", lang.code())
                });
            let id = lang.code().parse().expect("a language identifier");
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            // Plain text in HTML attributes and JSON: no bidi isolation marks around arguments.
            bundle.set_use_isolating(false);
            bundle
                .add_resource(resource)
                .unwrap_or_else(|e| panic!("locales/{}/mole.ftl: {e:?}", lang.code()));
            bundle
        })
        .collect();
    Catalogue { bundles }
});

/// The translator of one request: hand it to a template as `t` and call `t.t("id")`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tr {
    /// The request's language.
    pub lang: Lang,
}

impl Tr {
    /// A translator for `lang`.
    pub fn new(lang: Lang) -> Self {
        Self { lang }
    }

    /// Every language, for the page's switch.
    pub fn languages(&self) -> &'static [Lang] {
        &Lang::ALL
    }

    /// The language code, for `<html lang>`.
    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// A message without arguments.
    pub fn t(&self, id: &str) -> String {
        self.format(id, None)
    }

    /// A message with one argument.
    pub fn t1<'a>(&self, id: &str, name: &'a str, value: impl Into<FluentValue<'a>>) -> String {
        let mut args = FluentArgs::new();
        args.set(name, value);
        self.format(id, Some(&args))
    }

    /// A message with two arguments.
    pub fn t2<'a>(
        &self,
        id: &str,
        first: (&'a str, FluentValue<'a>),
        second: (&'a str, FluentValue<'a>),
    ) -> String {
        let mut args = FluentArgs::new();
        args.set(first.0, first.1);
        args.set(second.0, second.1);
        self.format(id, Some(&args))
    }

    /// Whether the request's language has the message (not counting the English fallback).
    pub fn has(&self, id: &str) -> bool {
        CATALOGUE.bundles[self.lang.index()].has_message(id)
    }

    /// A diagnosis's name: the card's own in English (the card is the source), the catalogue's
    /// `dx-<code>` in other languages, the card's when the catalogue does not know the code.
    pub fn name_of_diagnosis(&self, code: &str, card_name: &str) -> String {
        let id = format!("dx-{code}");
        if self.lang == Lang::En || !self.has(&id) {
            card_name.to_owned()
        } else {
            self.t(&id)
        }
    }

    /// A message as HTML (escaped) with one argument that is HTML already: our own markup, such
    /// as a `<time>` or a `<strong>` around a figure, placed where the language puts it.
    /// Render with `|safe`; `html` must never hold text from a request.
    pub fn html(&self, id: &str, name: &str, html: impl AsRef<str>) -> String {
        const SLOT: &str = "\u{E000}";
        let text = self.t1(id, name, SLOT);
        escape_html(&text).replace(SLOT, html.as_ref())
    }

    /// A message with any arguments.
    pub fn with_args(&self, id: &str, args: &FluentArgs) -> String {
        self.format(id, Some(args))
    }

    fn format(&self, id: &str, args: Option<&FluentArgs>) -> String {
        let catalogue = &*CATALOGUE;
        for lang in [self.lang, Lang::En] {
            let bundle = &catalogue.bundles[lang.index()];
            let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
                continue;
            };
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, args, &mut errors);
            if !errors.is_empty() {
                tracing::error!(id, lang = lang.code(), ?errors, "a message did not format");
            }
            return text.into_owned();
        }
        tracing::error!(id, "a message is missing from the catalogue");
        format!("⟦{id}⟧")
    }
}

/// `text` escaped for HTML text and attribute values (the evaluator's report uses the same).
pub use mole_eval::report::escape as escape_html;

/// The language of a request: `?lang=`, else the cookie, else `Accept-Language`, else English.
/// Returns the language and whether it came from the query (then it is remembered).
pub fn negotiate(query: Option<&str>, headers: &HeaderMap) -> (Lang, bool) {
    let asked = query.and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "lang")
            .and_then(|(_, v)| Lang::parse(v))
    });
    if let Some(lang) = asked {
        return (lang, true);
    }
    let remembered = crate::identity::cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v));
    let accepted = || {
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Lang::from_accept_language)
    };
    (remembered.or_else(accepted).unwrap_or_default(), false)
}

/// Middleware: puts the request's [`Tr`] in its extensions; remembers a language chosen with
/// `?lang=` in a cookie; says that answers vary with the language headers.
pub async fn choose_language(mut request: Request, next: Next) -> Response {
    let (lang, chosen) = negotiate(request.uri().query(), request.headers());
    request.extensions_mut().insert(Tr::new(lang));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if chosen {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            lang.code()
        );
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("a language code"),
        );
    }
    headers.append(
        header::VARY,
        HeaderValue::from_static("accept-language, cookie"),
    );
    headers
        .entry(header::CONTENT_LANGUAGE)
        .or_insert(HeaderValue::from_static(lang.code()));
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Tr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Tr>().copied().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message ids of a language's catalogue (for the tests that keep the languages in step).
    fn message_ids(lang: Lang) -> Vec<String> {
        let source = SOURCES[lang.index()].1;
        let resource = FluentResource::try_new(source.to_owned()).expect("the catalogue parses");
        resource
            .entries()
            .filter_map(|e| match e {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_language_has_every_message_of_the_others() {
        let english = message_ids(Lang::En);
        assert!(!english.is_empty());
        for lang in [Lang::Fr, Lang::Nl] {
            let ids = message_ids(lang);
            let missing: Vec<_> = english.iter().filter(|id| !ids.contains(id)).collect();
            let extra: Vec<_> = ids.iter().filter(|id| !english.contains(id)).collect();
            assert!(missing.is_empty(), "{}: missing {missing:?}", lang.code());
            assert!(
                extra.is_empty(),
                "{}: not in English {extra:?}",
                lang.code()
            );
        }
    }

    #[test]
    fn every_message_formats_in_every_language_without_errors() {
        for lang in Lang::ALL {
            let bundle = &CATALOGUE.bundles[lang.index()];
            for id in message_ids(lang) {
                let pattern = bundle.get_message(&id).and_then(|m| m.value()).unwrap();
                let mut args = FluentArgs::new();
                for name in [
                    "n",
                    "size",
                    "limit",
                    "type",
                    "date",
                    "percent",
                    "threshold",
                    "version",
                    "caught",
                    "missed",
                    "cleared",
                    "sent_on",
                    "wait",
                    "largest",
                    "count",
                    "architecture",
                    "data",
                    "backend",
                    "set",
                    "link",
                    "value",
                    "width",
                    "height",
                    "min",
                    "format",
                    "sent",
                ] {
                    args.set(name, FluentValue::from("1"));
                }
                let mut errors = Vec::new();
                let text = bundle.format_pattern(pattern, Some(&args), &mut errors);
                assert!(errors.is_empty(), "{} {id}: {errors:?}", lang.code());
                assert!(!text.trim().is_empty(), "{} {id} is empty", lang.code());
            }
        }
    }

    #[test]
    fn the_language_comes_from_the_query_then_the_cookie_then_accept_language() {
        let mut headers = HeaderMap::new();
        assert_eq!(negotiate(None, &headers), (Lang::En, false));
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("de-DE, nl-BE;q=0.8, fr;q=0.9"),
        );
        assert_eq!(negotiate(None, &headers), (Lang::Fr, false));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; mole_lang=nl"),
        );
        assert_eq!(negotiate(Some("x=1"), &headers), (Lang::Nl, false));
        assert_eq!(negotiate(Some("lang=en&x=1"), &headers), (Lang::En, true));
        // What the catalogue lacks is ignored.
        assert_eq!(
            negotiate(Some("lang=de"), &HeaderMap::new()),
            (Lang::En, false)
        );
        assert_eq!(Lang::from_accept_language("fr;q=0, nl"), Some(Lang::Nl));
        assert_eq!(Lang::from_accept_language("*"), None);
    }

    #[test]
    fn html_messages_escape_the_text_and_place_the_markup_where_the_language_puts_it() {
        let fr = Tr::new(Lang::Fr);
        let html = fr.html("result-sent", "date", "<time>X</time>");
        assert_eq!(html, "Photo envoyée le <time>X</time>.");
        let en = Tr::new(Lang::En);
        let html = en.html("mine-sent", "date", "<b>&</b>");
        assert_eq!(html, "sent <b>&</b>");
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn a_missing_message_falls_back_to_english_and_an_unknown_one_shows_its_id() {
        let fr = Tr::new(Lang::Fr);
        assert!(fr.t("no-such-message").contains("no-such-message"));
    }
}
