//! Settings read from the environment that more than one layer uses: the bound
//! on a wait (`TPMKEY_TIMEOUT`, `TPMKEY_BUSY_TIMEOUT`), parsed the same way for
//! the TPM transports and for the store's lock.

use std::time::Duration;

/// How long a wait for the TPM, or for another process changing the store, may
/// take (`TPMKEY_TIMEOUT`): RSA key generation on a slow hardware TPM takes up to
/// a minute.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// An environment variable with a value that cannot be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{var}={value:?}: {reason}")]
pub struct BadSetting {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What is needed.
    pub reason: &'static str,
}

/// A number of seconds (decimals allowed: `0.5`) from `var`; `None` when it is
/// unset or empty.
///
/// # Errors
/// A value that is not a positive number of seconds up to a day.
pub fn seconds_from_env(var: &'static str) -> Result<Option<Duration>, BadSetting> {
    let Some(v) = std::env::var_os(var) else {
        return Ok(None);
    };
    seconds(var, v.to_string_lossy().trim())
}

fn seconds(var: &'static str, text: &str) -> Result<Option<Duration>, BadSetting> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Some(Duration::from_secs_f64(s))),
        _ => Err(BadSetting {
            var,
            value: text.to_string(),
            reason: "a number of seconds between 0 and 86400 is needed, e.g. 30 or 0.5",
        }),
    }
}

/// `TPMKEY_TIMEOUT`, or its default.
///
/// # Errors
/// As [`seconds_from_env`].
pub fn answer_timeout() -> Result<Duration, BadSetting> {
    Ok(seconds_from_env("TPMKEY_TIMEOUT")?.unwrap_or(DEFAULT_ANSWER_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_positive_and_at_most_a_day() {
        assert_eq!(seconds("V", ""), Ok(None));
        assert_eq!(seconds("V", "0.5"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(seconds("V", "86400"), Ok(Some(Duration::from_secs(86_400))));
        for bad in ["0", "-1", "86401", "NaN", "inf", "ten"] {
            assert!(seconds("V", bad).is_err(), "{bad}");
        }
    }
}
