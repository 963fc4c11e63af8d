//! An independent AWS Signature Version 4 check for captured requests, written from the
//! published algorithm (canonical request → string to sign → HMAC chain), so a request the
//! connector signs can be verified without trusting the signer that produced it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::capture_server::CapturedRequest;

/// What the Authorization header claims.
#[derive(Debug)]
pub struct Signed {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(request: &CapturedRequest) -> Signed {
    let auth = request
        .header("authorization")
        .unwrap_or_else(|| panic!("request is not signed:\n{}", request.dump()));
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .unwrap_or_else(|| panic!("not a SigV4 header: {auth}"));
    let field = |name: &str| {
        rest.split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {auth}"))
            .to_string()
    };
    let credential = field("Credential=");
    let scope: Vec<&str> = credential.split('/').collect();
    assert_eq!(scope.len(), 5, "{credential}");
    assert_eq!(scope[4], "aws4_request", "{credential}");
    Signed {
        access_key_id: scope[0].to_string(),
        date: scope[1].to_string(),
        region: scope[2].to_string(),
        service: scope[3].to_string(),
        signed_headers: field("SignedHeaders=")
            .split(';')
            .map(str::to_string)
            .collect(),
        signature: field("Signature="),
    }
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Recomputes the signature of `request` (a POST to `/` without query, as AWS JSON calls
/// are) with `secret` and panics with the canonical request if it differs.
pub fn verify(request: &CapturedRequest, secret: &str) -> Signed {
    let signed = parse_authorization(request);
    let amz_date = request.header("x-amz-date").expect("X-Amz-Date");
    assert_eq!(&amz_date[..8], signed.date, "credential date vs X-Amz-Date");
    for required in ["host", "x-amz-date", "x-amz-target", "content-type"] {
        assert!(
            signed.signed_headers.iter().any(|h| h == required),
            "{required} is not signed: {:?}",
            signed.signed_headers
        );
    }
    let mut canonical_headers = String::new();
    for name in &signed.signed_headers {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert!(!values.is_empty(), "signed header {name} was not sent");
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let (path, query) = request
        .path
        .split_once('?')
        .unwrap_or((request.path.as_str(), ""));
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        path,
        query,
        canonical_headers,
        signed.signed_headers.join(";"),
        hex::encode(Sha256::digest(&request.body))
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        signed.date, signed.region, signed.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = hmac(format!("AWS4{secret}").as_bytes(), &signed.date);
    let key = hmac(&key, &signed.region);
    let key = hmac(&key, &signed.service);
    let key = hmac(&key, "aws4_request");
    let expected = hex::encode(hmac(&key, &string_to_sign));
    assert_eq!(
        signed.signature, expected,
        "the signature does not verify; canonical request:\n{canonical_request}"
    );
    signed
}
