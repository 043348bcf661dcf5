//! `%` tokens and `~`, expanded once the whole file has been read (with the values the
//! connection will use), as ssh does. Which option takes which token follows ssh_config(5).

use super::Local;

/// The values tokens stand for.
pub(super) struct Values<'a> {
    /// `%h`: the host name that will be dialled.
    pub host: &'a str,
    /// `%n`: the name looked up.
    pub original: &'a str,
    /// `%p`
    pub port: u16,
    /// `%r`: the remote user.
    pub user: &'a str,
    pub local: &'a Local,
}

/// Which tokens an option accepts.
#[derive(Clone, Copy)]
pub(super) enum Accepts {
    /// `HostName`: `%h %%`.
    HostName,
    /// `ProxyJump`: `%h %n %p %r %%`.
    ProxyJump,
    /// `IdentityFile`, `UserKnownHostsFile`: also `%d %i %L %l %u`, and a leading `~`.
    Path,
}

/// Expand `value`; `Err(token)` names the first token this option does not accept.
pub(super) fn expand(value: &str, accepts: Accepts, v: &Values<'_>) -> Result<String, String> {
    let mut out = String::new();
    let value = match accepts {
        Accepts::Path => tilde(value, v.local),
        _ => value.to_string(),
    };
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(t) = chars.next() else {
            return Err("%".into());
        };
        let path = matches!(accepts, Accepts::Path);
        let proxy = matches!(accepts, Accepts::ProxyJump) || path;
        let short = v.local.hostname.split('.').next().unwrap_or_default();
        match t {
            '%' => out.push('%'),
            'h' => out.push_str(v.host),
            'n' if proxy => out.push_str(v.original),
            'p' if proxy => out.push_str(&v.port.to_string()),
            'r' if proxy => out.push_str(v.user),
            'd' if path => out.push_str(&v.local.home.to_string_lossy()),
            'i' if path => out.push_str(&v.local.uid.to_string()),
            'L' if path => out.push_str(short),
            'l' if path => out.push_str(&v.local.hostname),
            'u' if path => out.push_str(&v.local.user),
            other => return Err(format!("%{other}")),
        }
    }
    Ok(out)
}

/// `~` and `~/…` are the local home (`~user` forms are left as written).
pub(super) fn tilde(value: &str, local: &Local) -> String {
    if value == "~" {
        return local.home.to_string_lossy().into_owned();
    }
    match value.strip_prefix("~/") {
        Some(rest) => local.home.join(rest).to_string_lossy().into_owned(),
        None => value.to_string(),
    }
}
