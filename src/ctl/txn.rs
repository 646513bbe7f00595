//! Writing many keys in as few etcd transactions as the server allows. etcd does not tell
//! its `--max-txn-ops` (128 by default) or `--max-request-bytes`: everything goes in one
//! transaction first, and a refusal for size makes the chunks smaller (128 operations, then
//! halves) until the server takes them.

use etcd_client::{Client, Txn, TxnOp};

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// The next, smaller chunk size after etcd refused a transaction of `chunk` operations with
/// `error`; `None` when the refusal is not about size or the chunk cannot shrink.
pub fn smaller_chunk(chunk: usize, error: &str) -> Option<usize> {
    let error = error.to_ascii_lowercase();
    let too_many = error.contains("too many operations in txn request");
    let too_large = error.contains("request is too large") || error.contains("too large");
    if !(too_many || too_large) || chunk <= 1 {
        return None;
    }
    if too_many && chunk > DEFAULT_MAX_TXN_OPS {
        Some(DEFAULT_MAX_TXN_OPS)
    } else {
        Some(chunk / 2)
    }
}

/// Puts every (key, value) in as few transactions as etcd takes; returns how many it took.
/// A failure after some transactions went through leaves those written.
pub async fn put_all(client: &mut Client, kvs: &[(String, Vec<u8>)]) -> anyhow::Result<usize> {
    let mut chunk = kvs.len().max(1);
    let mut done = 0;
    let mut transactions = 0;
    while done < kvs.len() {
        let end = (done + chunk).min(kvs.len());
        let ops: Vec<TxnOp> = kvs[done..end]
            .iter()
            .map(|(k, v)| TxnOp::put(k.as_str(), v.clone(), None))
            .collect();
        match client.txn(Txn::new().and_then(ops)).await {
            Ok(_) => {
                transactions += 1;
                done = end;
            }
            Err(e) => match smaller_chunk(end - done, &e.to_string()) {
                Some(smaller) => chunk = smaller,
                None if done > 0 => {
                    anyhow::bail!("etcd refused a transaction after {done} keys were written: {e}")
                }
                None => return Err(e.into()),
            },
        }
    }
    Ok(transactions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_shrink_only_for_size_refusals() {
        let too_many = "grpc status: etcdserver: too many operations in txn request";
        assert_eq!(smaller_chunk(1000, too_many), Some(128));
        assert_eq!(smaller_chunk(128, too_many), Some(64));
        assert_eq!(smaller_chunk(1, too_many), None);
        assert_eq!(
            smaller_chunk(100, "etcdserver: request is too large"),
            Some(50)
        );
        assert_eq!(smaller_chunk(100, "etcdserver: permission denied"), None);
    }
}
