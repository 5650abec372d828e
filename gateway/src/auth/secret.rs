use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;

/// The configured secret, or the one kept in `data_dir/file_name`, created on first use
/// with 256 random bits and owner-only permissions.
pub fn load_or_create_secret(
    configured: Option<&SecretString>,
    data_dir: &Path,
    file_name: &str,
) -> anyhow::Result<SecretString> {
    use anyhow::Context as _;
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    let path = data_dir.join(file_name);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        anyhow::ensure!(!text.is_empty(), "{} is empty", path.display());
        return Ok(SecretString::from(text.to_owned()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(SecretString::from(secret))
        }
        // Another process created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create_secret(None, data_dir, file_name)
        }
        Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
    }
}
