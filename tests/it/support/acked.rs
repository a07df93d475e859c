//! What clients were acknowledged, and the check that the log holds exactly that after a
//! restart: each `AA`'d message once, each instance answered Success with its event and its
//! file at the recorded size.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use super::dataset::{Instance, dataset};
use super::hl7msg::{ack_code, orm};
use super::scu::{self, Answer, CT_IMAGE_STORAGE, EXPLICIT_LE};
use super::{MllpClient, http};

/// What was acknowledged (and what the log must therefore hold after a restart).
#[derive(Default)]
pub struct Acked {
    pub control_ids: Vec<String>,
    pub sop_uids: Vec<String>,
}

impl Acked {
    /// Sends an order; records it when answered `AA`; returns the ACK code.
    pub async fn hl7(&mut self, addr: SocketAddr, message: &[u8], control_id: &str) -> String {
        let code = ack_code(&MllpClient::connect(addr).await.send(message).await);
        if code == "AA" {
            self.control_ids.push(control_id.to_owned());
        }
        code
    }

    pub async fn order(&mut self, addr: SocketAddr, control_id: &str) -> String {
        self.hl7(addr, &orm(control_id, &format!("ACC-{control_id}")), control_id).await
    }

    /// Stores `i` in one association; records it on `Success`.
    pub async fn store(&mut self, addr: SocketAddr, i: &Instance) -> Answer {
        let (sop, data) = (i.sop.clone(), dataset(i, EXPLICIT_LE));
        let answer = tokio::task::spawn_blocking(move || {
            let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
            let answer = scu.store(CT_IMAGE_STORAGE, &sop, &data, 16_384);
            scu.release();
            answer
        })
        .await
        .expect("the C-STORE task");
        if answer.status == 0 {
            self.sop_uids.push(i.sop.clone());
        }
        answer
    }

    /// Every acknowledged message is in the log exactly once, every acknowledged instance
    /// has its event and its file (with the recorded size).
    pub async fn check(&self, addr: SocketAddr, state: &Path) {
        let events = http::all_events(addr).await;
        let mut messages: HashMap<String, usize> = HashMap::new();
        let mut instances: HashMap<String, (String, u64)> = HashMap::new();
        for e in &events {
            if let Some(id) = e["data"]["control_id"].as_str() {
                *messages.entry(id.to_owned()).or_default() += 1;
            }
            if e["event_type"] == "InstanceStored" {
                let path = e["data"]["file_path"].as_str().unwrap().to_owned();
                let size = e["data"]["size"].as_u64().unwrap();
                instances.insert(e["data"]["sop_instance_uid"].as_str().unwrap().to_owned(), (path, size));
            }
        }
        for id in &self.control_ids {
            assert_eq!(messages.get(id), Some(&1), "{id} was acknowledged: it must be in the log once");
        }
        for sop in &self.sop_uids {
            let (path, size) = instances.get(sop).unwrap_or_else(|| panic!("{sop} was acknowledged: no event"));
            let meta = std::fs::metadata(state.join(path)).unwrap_or_else(|e| panic!("{sop}: {path}: {e}"));
            assert_eq!(meta.len(), *size, "{path}");
        }
    }
}
