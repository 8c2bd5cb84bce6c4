//! Archive addresses as users write them: a path, `file://…`, `s3://bucket/prefix`,
//! `http(s)://host/path`; and the S3 settings that are not part of an address.

use std::path::PathBuf;

use super::StoreError;

/// Where an archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Local(PathBuf),
    /// A bucket and a key prefix ("" for the bucket's root), without slashes at the ends.
    S3 {
        bucket: String,
        prefix: String,
    },
    /// The archive's root URL, without a trailing slash.
    Http(String),
}

impl Address {
    /// Parses an `ARCHIVE` argument. Anything without a known scheme is a path.
    pub fn parse(s: &str) -> Result<Address, StoreError> {
        let bad = |why: &str| StoreError::Config(format!("{s}: {why}"));
        if let Some(rest) = s.strip_prefix("s3://") {
            let rest = rest.trim_end_matches('/');
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name (s3://BUCKET/PREFIX)"));
            }
            if prefix
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
                && !prefix.is_empty()
            {
                return Err(bad("empty, '.' or '..' component in the key prefix"));
            }
            return Ok(Address::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(bad("an archive URL has no query or fragment"));
            }
            return Ok(Address::Http(s.trim_end_matches('/').to_string()));
        }
        if let Some(rest) = s.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad("a file:// address needs an absolute path (file:///…)"));
            }
            return Ok(Address::Local(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return Err(bad(&format!(
                "unknown scheme {scheme}:// (a path, file://, s3:// or http(s)://)"
            )));
        }
        Ok(Address::Local(PathBuf::from(s)))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Local(p) => write!(f, "{}", p.display()),
            Address::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Address::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Address::Http(u) => f.write_str(u),
        }
    }
}

/// S3 settings beyond what the environment (`AWS_*`) and `~/.aws` give. Each field, when
/// set, overrides the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteOptions {
    /// `AWS_ENDPOINT_URL`: a self-hosted server (MinIO, Ceph, Garage, …).
    pub endpoint: Option<String>,
    /// `AWS_REGION`.
    pub region: Option<String>,
    /// `AWS_PROFILE`: the section of `~/.aws/credentials` and `~/.aws/config`.
    pub profile: Option<String>,
    /// Send unsigned requests (public buckets), like `aws --no-sign-request`.
    pub anonymous: bool,
    /// `bucket.host/key` requests instead of `host/bucket/key` (path style, the default,
    /// which every self-hosted server understands).
    pub virtual_hosted: bool,
}

impl RemoteOptions {
    /// Applies one `-o` mount option if it is a store option (`endpoint=URL`,
    /// `region=R`, `profile=P`, `no_sign_request`, `virtual_hosted`); returns whether it
    /// was one.
    pub fn apply_mount_option(&mut self, opt: &str) -> bool {
        let (k, v) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        match (k, v) {
            ("endpoint" | "endpoint_url", Some(v)) => self.endpoint = Some(v.to_string()),
            ("region", Some(v)) => self.region = Some(v.to_string()),
            ("profile", Some(v)) => self.profile = Some(v.to_string()),
            ("no_sign_request", None) => self.anonymous = true,
            ("virtual_hosted", None) => self.virtual_hosted = true,
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let s3 = |b: &str, p: &str| Address::S3 {
            bucket: b.into(),
            prefix: p.into(),
        };
        for (text, want) in [
            ("site.zarr", Address::Local("site.zarr".into())),
            ("/data/a b.zarr", Address::Local("/data/a b.zarr".into())),
            ("file:///data/a.zarr", Address::Local("/data/a.zarr".into())),
            ("s3://lab", s3("lab", "")),
            ("s3://lab/", s3("lab", "")),
            (
                "s3://lab/archives/site1.zarr/",
                s3("lab", "archives/site1.zarr"),
            ),
            (
                "https://example.org/a.zarr/",
                Address::Http("https://example.org/a.zarr".into()),
            ),
            (
                "http://127.0.0.1:8080/a",
                Address::Http("http://127.0.0.1:8080/a".into()),
            ),
        ] {
            assert_eq!(Address::parse(text).unwrap(), want, "{text}");
        }
        for bad in [
            "s3://",
            "s3:///x",
            "s3://b/a//c",
            "s3://b/../c",
            "file://relative",
            "gs://bucket/x",
            "https://h/a?x=1",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn mount_options_set_store_settings() {
        let mut o = RemoteOptions::default();
        for opt in [
            "endpoint=http://127.0.0.1:9000",
            "region=eu-west-1",
            "profile=lab",
            "no_sign_request",
            "virtual_hosted",
        ] {
            assert!(o.apply_mount_option(opt), "{opt}");
        }
        assert!(!o.apply_mount_option("allow_other"));
        assert!(!o.apply_mount_option("region"));
        assert_eq!(
            o,
            RemoteOptions {
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: Some("eu-west-1".into()),
                profile: Some("lab".into()),
                anonymous: true,
                virtual_hosted: true,
            }
        );
    }
}
