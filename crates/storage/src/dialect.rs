//! The few places where PostgreSQL's and SQLite's SQL differ, written once.
//!
//! A statement both databases run is written as PostgreSQL with these tokens where the two
//! differ; [`Dialect::sql`] replaces them:
//!
//! | token          | PostgreSQL                           | SQLite                                   |
//! |----------------|--------------------------------------|------------------------------------------|
//! | `{now}`        | `now()`                              | the time as RFC 3339 text (UTC)          |
//! | `{ago $N}`     | `now() - make_interval(secs => $N)`  | the same, by `strftime`'s modifiers      |
//! | `{in $N}`      | `now() + make_interval(secs => $N)`  | the same, by `strftime`'s modifiers      |
//! | `{jsonb}`      | `::jsonb`                            | nothing (JSON is text)                   |
//! | `{for_update}` | ` FOR UPDATE`                        | nothing (one writer at a time)           |
//!
//! SQLite keeps times as RFC 3339 text in UTC with the `+00:00` offset, the form sqlx writes a
//! bound `DateTime<Utc>` in, so that comparing and ordering them as text is comparing and
//! ordering the times. Statements that cannot be shared (PostgreSQL's data-modifying CTEs, which
//! SQLite lacks) are written per dialect, side by side, where they are used.

use std::borrow::Cow;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

/// The SQL dialect of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: the scaled mode.
    Postgres,
    /// SQLite: the embedded mode.
    Sqlite,
}

/// SQLite's current time in the stored form (milliseconds, UTC, `+00:00`).
const SQLITE_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')";

impl Dialect {
    /// `template` with this dialect's text for each token (see the module documentation).
    pub fn sql(self, template: &'static str) -> SqlStr {
        AssertSqlSafe(self.translate(template)).into_sql_str()
    }

    /// [`Dialect::sql`] for a statement assembled at run time.
    pub fn sql_owned(self, template: &str) -> SqlStr {
        AssertSqlSafe(self.translate(template).into_owned()).into_sql_str()
    }

    fn translate(self, template: &str) -> Cow<'_, str> {
        if !template.contains('{') {
            return Cow::Borrowed(template);
        }
        let mut out = String::with_capacity(template.len() + 64);
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let token = &after[..end];
            match self.token(token) {
                Some(text) => out.push_str(&text),
                // Not ours (a JSON literal, say): kept as written.
                None => {
                    out.push('{');
                    out.push_str(token);
                    out.push('}');
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Cow::Owned(out)
    }

    fn token(self, token: &str) -> Option<String> {
        let pg = self == Self::Postgres;
        Some(match token {
            "now" if pg => "now()".to_owned(),
            "now" => SQLITE_NOW.to_owned(),
            "jsonb" if pg => "::jsonb".to_owned(),
            "for_update" if pg => " FOR UPDATE".to_owned(),
            "jsonb" | "for_update" => String::new(),
            _ => {
                let (sign, param) = if let Some(p) = token.strip_prefix("ago ") {
                    ('-', p)
                } else if let Some(p) = token.strip_prefix("in ") {
                    ('+', p)
                } else {
                    return None;
                };
                if !param.starts_with('$') || !param[1..].bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                if pg {
                    format!("(now() {sign} make_interval(secs => {param}))")
                } else {
                    format!(
                        "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '{sign}' || {param} || ' seconds')"
                    )
                }
            }
        })
    }

    /// The transaction start for a statement group that writes: SQLite takes the write lock at
    /// once, so that a transaction that read first cannot fail to upgrade later.
    pub fn begin_write(self) -> &'static str {
        match self {
            Self::Postgres => "BEGIN",
            Self::Sqlite => "BEGIN IMMEDIATE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn tokens_become_each_dialects_text_and_everything_else_stays() {
        let t = "UPDATE t SET at = {now}, d = $2{jsonb} WHERE until < {ago $3} \
                 AND x = '{}' AND y < {in $14}{for_update}";
        assert_eq!(
            Dialect::Postgres.translate(t),
            "UPDATE t SET at = now(), d = $2::jsonb WHERE until < (now() - make_interval(secs => \
             $3)) AND x = '{}' AND y < (now() + make_interval(secs => $14)) FOR UPDATE"
        );
        let lite = Dialect::Sqlite.translate(t);
        assert_eq!(
            lite,
            "UPDATE t SET at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), d = $2 WHERE until < \
             strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-' || $3 || ' seconds') AND x = '{}' \
             AND y < strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '+' || $14 || ' seconds')"
        );
        assert_eq!(Dialect::Sqlite.translate("{ago x}"), "{ago x}");
    }
}
