//! Digests of an upload: the MD5 behind S3's ETag, and the checksums a client asked for
//! or sent (`Content-MD5`, `x-amz-checksum-*` in headers or in an aws-chunked trailer).
//! Every one a client sent is checked before anything is published; a mismatch is
//! `BadDigest`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};
use s3s::dto::{self, ChecksumAlgorithm};
use s3s::{S3Error, S3ErrorCode};

use super::meta::Checksums;

/// The checksums a request carries or asks for, by algorithm.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    /// `Content-MD5`, decoded.
    pub md5: Option<[u8; 16]>,
    /// Algorithm → the base64 value the client sent (`None`: compute and store only).
    pub checksums: Vec<(Algorithm, Option<String>)>,
    /// An algorithm whose value arrives in the trailer (`x-amz-trailer`).
    pub trailer: Option<Algorithm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            ChecksumAlgorithm::CRC32 => Some(Algorithm::Crc32),
            ChecksumAlgorithm::CRC32C => Some(Algorithm::Crc32c),
            ChecksumAlgorithm::CRC64NVME => Some(Algorithm::Crc64Nvme),
            ChecksumAlgorithm::SHA1 => Some(Algorithm::Sha1),
            ChecksumAlgorithm::SHA256 => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// The header (and trailer) carrying this checksum.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn from_header(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.header() == name)
    }
}

impl Expected {
    /// Reads what the request's typed fields and headers carry. `algorithm` is
    /// `x-amz-sdk-checksum-algorithm`; `sent` the `x-amz-checksum-*` values.
    pub fn from_request(
        content_md5: Option<&str>,
        algorithm: Option<&ChecksumAlgorithm>,
        sent: &dto::Checksum,
        headers: &http::HeaderMap,
    ) -> Result<Self, S3Error> {
        // An empty header is a malformed digest, not an absent one.
        let content_md5 =
            content_md5.or_else(|| headers.get("content-md5").and_then(|v| v.to_str().ok()));
        let md5 = match content_md5 {
            Some(v) => Some(
                STANDARD
                    .decode(v.trim())
                    .ok()
                    .and_then(|d| <[u8; 16]>::try_from(d).ok())
                    .ok_or_else(|| {
                        S3Error::with_message(
                            S3ErrorCode::InvalidDigest,
                            "Content-MD5 is not the base64 of a 16-byte MD5",
                        )
                    })?,
            ),
            None => None,
        };
        let mut checksums = Vec::new();
        let values = [
            (Algorithm::Crc32, &sent.checksum_crc32),
            (Algorithm::Crc32c, &sent.checksum_crc32c),
            (Algorithm::Crc64Nvme, &sent.checksum_crc64nvme),
            (Algorithm::Sha1, &sent.checksum_sha1),
            (Algorithm::Sha256, &sent.checksum_sha256),
        ];
        for (a, v) in values {
            if let Some(v) = v {
                checksums.push((a, Some(v.clone())));
            }
        }
        let trailer = match headers.get("x-amz-trailer").map(|v| v.to_str()) {
            Some(Ok(name)) => Some(
                Algorithm::from_header(name.trim().to_ascii_lowercase().as_str()).ok_or_else(
                    || {
                        S3Error::with_message(
                            S3ErrorCode::InvalidArgument,
                            format!("x-amz-trailer names {name:?}, not a checksum S3 supports"),
                        )
                    },
                )?,
            ),
            Some(Err(_)) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "x-amz-trailer is not text",
                ));
            }
            None => None,
        };
        if let Some(name) = algorithm {
            let a = Algorithm::parse(name.as_str()).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("checksum algorithm {:?} is not supported", name.as_str()),
                )
            })?;
            if !checksums.iter().any(|(b, _)| *b == a) && trailer != Some(a) {
                checksums.push((a, None));
            }
        }
        if checksums.len() + usize::from(trailer.is_some()) > 1 {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            ));
        }
        Ok(Expected {
            md5,
            checksums,
            trailer,
        })
    }
}

impl Expected {
    /// For bytes the router copies itself (CopyObject, UploadPartCopy, Complete): no value
    /// was sent, the algorithm asked for (if any) is computed and stored.
    pub fn computed(algorithm: Option<&ChecksumAlgorithm>) -> Result<Self, S3Error> {
        Self::from_request(
            None,
            algorithm,
            &dto::Checksum::default(),
            &http::HeaderMap::new(),
        )
    }
}

/// Running digests over an upload.
pub struct Digests {
    md5: Option<Md5>,
    crc32: Option<Crc32>,
    crc32c: Option<Crc32c>,
    crc64nvme: Option<Crc64Nvme>,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
}

impl std::fmt::Debug for Digests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digests").finish_non_exhaustive()
    }
}

/// What an upload's digests came to.
#[derive(Debug, Clone)]
pub struct Sums {
    pub md5: [u8; 16],
    pub checksums: Checksums,
}

impl Sums {
    pub fn etag(&self) -> String {
        hex(&self.md5)
    }
}

impl Digests {
    /// `md5`: whether the MD5 is wanted (not for a multipart object, whose ETag is made
    /// of its parts'); it is computed anyway when `Content-MD5` was sent.
    pub fn new(expected: &Expected, md5: bool) -> Self {
        let wanted = |a: Algorithm| {
            expected.trailer == Some(a) || expected.checksums.iter().any(|(b, _)| *b == a)
        };
        Digests {
            md5: (md5 || expected.md5.is_some()).then(Md5::new),
            crc32: wanted(Algorithm::Crc32).then(Crc32::new),
            crc32c: wanted(Algorithm::Crc32c).then(Crc32c::new),
            crc64nvme: wanted(Algorithm::Crc64Nvme).then(Crc64Nvme::new),
            sha1: wanted(Algorithm::Sha1).then(Sha1::new),
            sha256: wanted(Algorithm::Sha256).then(Sha256::new),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.crc32 {
            h.update(data);
        }
        if let Some(h) = &mut self.crc32c {
            h.update(data);
        }
        if let Some(h) = &mut self.crc64nvme {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
    }

    /// Finishes, and checks every value the client sent (headers, and `trailers` once
    /// the body has ended).
    pub fn verify(
        self,
        expected: &Expected,
        trailers: Option<&http::HeaderMap>,
    ) -> Result<Sums, S3Error> {
        let enc = |d: &[u8]| STANDARD.encode(d);
        let checksums = Checksums {
            crc32: self.crc32.map(|h| enc(&h.finalize())),
            crc32c: self.crc32c.map(|h| enc(&h.finalize())),
            crc64nvme: self.crc64nvme.map(|h| enc(&h.finalize())),
            sha1: self.sha1.map(|h| enc(h.finalize().as_ref())),
            sha256: self.sha256.map(|h| enc(h.finalize().as_ref())),
            kind: None,
        };
        let md5 = self.md5.map(|h| h.finalize()).unwrap_or_default();
        if let Some(want) = expected.md5
            && want != md5
        {
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
        let mut sent: Vec<(Algorithm, String)> = expected
            .checksums
            .iter()
            .filter_map(|(a, v)| v.clone().map(|v| (*a, v)))
            .collect();
        if let Some(a) = expected.trailer {
            let value = trailers
                .and_then(|t| t.get(a.header()))
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    S3Error::with_message(
                        S3ErrorCode::InvalidRequest,
                        format!("the trailer announced {} but did not carry it", a.header()),
                    )
                })?;
            sent.push((a, value.trim().to_string()));
        }
        for (a, value) in sent {
            let computed = match a {
                Algorithm::Crc32 => &checksums.crc32,
                Algorithm::Crc32c => &checksums.crc32c,
                Algorithm::Crc64Nvme => &checksums.crc64nvme,
                Algorithm::Sha1 => &checksums.sha1,
                Algorithm::Sha256 => &checksums.sha256,
            };
            if computed.as_deref() != Some(value.as_str()) {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    format!(
                        "The {} you specified did not match the calculated checksum.",
                        a.header()
                    ),
                ));
            }
        }
        let mut checksums = checksums;
        if !checksums.is_empty() {
            checksums.kind = Some("FULL_OBJECT".into());
        }
        Ok(Sums { md5, checksums })
    }
}

/// Digests computed as the body goes by: in place, or on a thread of their own fed the
/// body's chunks in order while the writes go out, so a large PUT's MD5 (about 1.5 s of
/// CPU per GiB) overlaps its writes instead of adding to them. Each chunk holds its
/// transfer-budget permit until it is hashed, so a hasher that falls behind stalls the
/// upload instead of growing memory.
#[derive(Debug)]
pub enum Hashing {
    InPlace(Box<Digests>),
    Thread {
        chunks: tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
        done: tokio::task::JoinHandle<Digests>,
    },
}

impl Hashing {
    /// `on_thread`: for a body larger than a chunk or two; a small one costs less in place.
    pub fn start(mut digests: Digests, on_thread: bool) -> Self {
        if !on_thread {
            return Hashing::InPlace(Box::new(digests));
        }
        let (chunks, mut rx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
        let done = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                digests.update(&chunk);
            }
            digests
        });
        Hashing::Thread { chunks, done }
    }

    pub fn feed(&mut self, chunk: &bytes::Bytes) {
        match self {
            Hashing::InPlace(d) => d.update(chunk),
            // The receiver lives until every sender is gone; a send cannot fail before.
            Hashing::Thread { chunks, .. } => {
                let _ = chunks.send(chunk.clone());
            }
        }
    }

    /// The digests of everything fed.
    pub async fn finish(self) -> Result<Digests, S3Error> {
        match self {
            Hashing::InPlace(d) => Ok(*d),
            Hashing::Thread { chunks, done } => {
                drop(chunks);
                done.await.map_err(|e| {
                    S3Error::with_message(
                        S3ErrorCode::InternalError,
                        format!("the digest thread failed: {e}"),
                    )
                })
            }
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The ETag of a multipart object: the MD5 of the parts' MD5s, then `-N`.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    format!("{}-{}", hex(&h.finalize()), part_md5s.len())
}

/// The 16 bytes of an MD5 ETag value (`"…"` quotes already removed).
pub fn md5_of_etag(etag: &str) -> Option<[u8; 16]> {
    if etag.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(etag.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(data: &[u8], expected: &Expected) -> Result<Sums, S3Error> {
        let mut d = Digests::new(expected, true);
        d.update(data);
        d.verify(expected, None)
    }

    #[test]
    fn the_etag_is_the_md5_of_the_content() {
        // RFC 1321's test vector.
        let s = sums(b"abc", &Expected::default()).unwrap();
        assert_eq!(s.etag(), "900150983cd24fb0d6963f7d28e17f72");
        assert!(s.checksums.is_empty());
        assert_eq!(md5_of_etag(&s.etag()), Some(s.md5));
    }

    #[test]
    fn a_wrong_content_md5_or_checksum_is_bad_digest() {
        let md5 = STANDARD.decode("kAFQmDzST7DWlj99KOF/cg==").unwrap();
        let good = Expected {
            md5: Some(md5.clone().try_into().unwrap()),
            ..Expected::default()
        };
        assert!(sums(b"abc", &good).is_ok());
        assert_eq!(
            sums(b"abd", &good).unwrap_err().code(),
            &S3ErrorCode::BadDigest
        );
        // CRC32 of "abc" is 0x352441c2.
        let crc = Expected {
            checksums: vec![(Algorithm::Crc32, Some("NSRBwg==".into()))],
            ..Expected::default()
        };
        let s = sums(b"abc", &crc).unwrap();
        assert_eq!(s.checksums.crc32.as_deref(), Some("NSRBwg=="));
        assert_eq!(
            sums(b"abd", &crc).unwrap_err().code(),
            &S3ErrorCode::BadDigest
        );
    }

    #[test]
    fn trailing_checksums_are_checked_after_the_body() {
        let e = Expected {
            trailer: Some(Algorithm::Crc32),
            ..Expected::default()
        };
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-amz-checksum-crc32", "NSRBwg==".parse().unwrap());
        let mut d = Digests::new(&e, true);
        d.update(b"abc");
        assert!(d.verify(&e, Some(&trailers)).is_ok());
        let mut d = Digests::new(&e, true);
        d.update(b"abc");
        assert_eq!(
            d.verify(&e, None).unwrap_err().code(),
            &S3ErrorCode::InvalidRequest
        );
    }

    #[tokio::test]
    async fn the_digest_thread_hashes_chunks_in_the_order_fed() {
        let e = Expected {
            checksums: vec![(Algorithm::Crc32, None)],
            ..Expected::default()
        };
        for on_thread in [true, false] {
            let mut hashing = Hashing::start(Digests::new(&e, true), on_thread);
            for piece in ["a", "b", "c"] {
                hashing.feed(&bytes::Bytes::from(piece));
            }
            let sums = hashing.finish().await.unwrap().verify(&e, None).unwrap();
            // RFC 1321's test vector for "abc"; CRC32 of "abc" is 0x352441c2.
            assert_eq!(sums.etag(), "900150983cd24fb0d6963f7d28e17f72");
            assert_eq!(sums.checksums.crc32.as_deref(), Some("NSRBwg=="));
        }
    }

    #[test]
    fn multipart_etags_are_the_md5_of_part_md5s() {
        let a = sums(b"a", &Expected::default()).unwrap().md5;
        let b = sums(b"b", &Expected::default()).unwrap().md5;
        let mut joined = a.to_vec();
        joined.extend_from_slice(&b);
        let whole = sums(&joined, &Expected::default()).unwrap().etag();
        assert_eq!(multipart_etag(&[a, b]), format!("{whole}-2"));
    }

    #[test]
    fn content_md5_must_be_16_bytes_of_base64() {
        let sent = dto::Checksum::default();
        let h = http::HeaderMap::new();
        for bad in ["not base64!", "YWJj", ""] {
            let e = Expected::from_request(Some(bad), None, &sent, &h).unwrap_err();
            assert_eq!(e.code(), &S3ErrorCode::InvalidDigest, "{bad}");
        }
        let mut empty = http::HeaderMap::new();
        empty.insert("content-md5", http::HeaderValue::from_static(""));
        let e = Expected::from_request(None, None, &sent, &empty).unwrap_err();
        assert_eq!(e.code(), &S3ErrorCode::InvalidDigest);
    }
}
