//! A storage SCU for tests: dicom-ul's association requestor (blocking; call it from
//! `spawn_blocking`), with C-ECHO/C-STORE command sets built by dicom-object and data sets
//! sent in fragments of a chosen size.

use std::net::SocketAddr;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::association::client::{ClientAssociation, ClientAssociationOptions};
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

pub const VERIFICATION: &str = "1.2.840.10008.1.1";
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Digital X-Ray Image Storage - For Presentation.
pub const DX_FOR_PRESENTATION: &str = "1.2.840.10008.5.1.4.1.1.1.1";
pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
pub const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

pub struct Scu {
    assoc: ClientAssociation<std::net::TcpStream>,
    next_id: u16,
}

/// A C-STORE answer: status and Error Comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub comment: Option<String>,
    pub message_id: u16,
    pub sop_class_uid: String,
}

pub type Result<T> = std::result::Result<T, dicom_ul::association::Error>;

/// Associates with `contexts` (abstract syntax, transfer syntaxes), max PDU `max_pdu`.
pub fn connect(
    addr: SocketAddr,
    calling: &str,
    called: &str,
    contexts: &[(&str, &[&str])],
    max_pdu: u32,
) -> Result<Scu> {
    let mut options =
        ClientAssociationOptions::new().calling_ae_title(calling).called_ae_title(called).max_pdu_length(max_pdu);
    for (abstract_syntax, syntaxes) in contexts {
        options = options.with_presentation_context(*abstract_syntax, syntaxes.to_vec());
    }
    let assoc = options.establish(addr)?;
    Ok(Scu { assoc, next_id: 1 })
}

/// CT storage over one transfer syntax, calling ae CT01 → ZENEDGE.
pub fn connect_ct(addr: SocketAddr, ts: &str) -> Scu {
    connect(addr, "CT01", "ZENEDGE", &[(VERIFICATION, &[IMPLICIT_LE]), (CT_IMAGE_STORAGE, &[ts])], 16_384)
        .expect("association")
}

impl Scu {
    fn context(&self, abstract_syntax: &str) -> (u8, String) {
        let pc = self
            .assoc
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.abstract_syntax == abstract_syntax
                    && pc.reason == dicom_ul::pdu::PresentationContextResultReason::Acceptance
            })
            .unwrap_or_else(|| panic!("{abstract_syntax} not accepted: {:?}", self.assoc.presentation_contexts()));
        (pc.id, pc.transfer_syntax.clone())
    }

    /// The transfer syntax the SCP accepted for `abstract_syntax`.
    pub fn accepted_ts(&self, abstract_syntax: &str) -> String {
        self.context(abstract_syntax).1
    }

    pub fn echo(&mut self) -> Answer {
        let (id, _) = self.context(VERIFICATION);
        let message_id = self.bump();
        let command = command(vec![
            uid(tags::AFFECTED_SOP_CLASS_UID, VERIFICATION),
            us(tags::COMMAND_FIELD, 0x0030),
            us(tags::MESSAGE_ID, message_id),
            us(tags::COMMAND_DATA_SET_TYPE, 0x0101),
        ]);
        self.send(id, PDataValueType::Command, &command, usize::MAX);
        self.answer()
    }

    /// Sends a C-STORE with `dataset` in fragments of `fragment` bytes; returns the answer.
    pub fn store(&mut self, sop_class: &str, sop_instance: &str, dataset: &[u8], fragment: usize) -> Answer {
        self.send_store(sop_class, sop_instance, dataset, fragment);
        self.answer()
    }

    /// Sends the command and `dataset` without its last fragment flag, then aborts.
    pub fn store_then_abort(mut self, sop_class: &str, sop_instance: &str, partial: &[u8]) {
        let (id, _) = self.context(sop_class);
        let message_id = self.bump();
        self.send(id, PDataValueType::Command, &store_command(sop_class, sop_instance, message_id), usize::MAX);
        let pdv = PDataValue {
            presentation_context_id: id,
            value_type: PDataValueType::Data,
            is_last: false,
            data: partial.to_vec(),
        };
        self.assoc.send(&Pdu::PData { data: vec![pdv] }).expect("send partial data");
        self.assoc.abort().expect("abort");
    }

    fn send_store(&mut self, sop_class: &str, sop_instance: &str, dataset: &[u8], fragment: usize) {
        let (id, _) = self.context(sop_class);
        let message_id = self.bump();
        self.send(id, PDataValueType::Command, &store_command(sop_class, sop_instance, message_id), usize::MAX);
        self.send(id, PDataValueType::Data, dataset, fragment);
    }

    /// Sends a stream of `total` data set bytes produced by `fill` in fragments of `fragment`,
    /// without holding it in memory.
    pub fn store_streamed(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        head: &[u8],
        total: usize,
        fragment: usize,
    ) -> Answer {
        let (id, _) = self.context(sop_class);
        let message_id = self.bump();
        self.send(id, PDataValueType::Command, &store_command(sop_class, sop_instance, message_id), usize::MAX);
        let mut sent = 0;
        let filler = vec![0x5a; fragment];
        while sent < total {
            let n = fragment.min(total - sent);
            let data =
                if sent < head.len() { head[sent..(sent + n).min(head.len())].to_vec() } else { filler[..n].to_vec() };
            let n = data.len();
            let pdv = PDataValue {
                presentation_context_id: id,
                value_type: PDataValueType::Data,
                is_last: sent + n == total,
                data,
            };
            self.assoc.send(&Pdu::PData { data: vec![pdv] }).expect("send data");
            sent += n;
        }
        self.answer()
    }

    fn send(&mut self, id: u8, value_type: PDataValueType, bytes: &[u8], fragment: usize) {
        let max = (self.assoc.acceptor_max_pdu_length() as usize).saturating_sub(6 + 12).max(64);
        let chunk = fragment.min(max);
        let mut pieces = bytes.chunks(chunk).peekable();
        if bytes.is_empty() {
            let pdv = PDataValue { presentation_context_id: id, value_type, is_last: true, data: Vec::new() };
            self.assoc.send(&Pdu::PData { data: vec![pdv] }).expect("send");
            return;
        }
        while let Some(piece) = pieces.next() {
            let pdv = PDataValue {
                presentation_context_id: id,
                value_type: value_type.clone(),
                is_last: pieces.peek().is_none(),
                data: piece.to_vec(),
            };
            self.assoc.send(&Pdu::PData { data: vec![pdv] }).expect("send");
        }
    }

    fn answer(&mut self) -> Answer {
        let mut command = Vec::new();
        loop {
            match self.assoc.receive().expect("a response PDU") {
                Pdu::PData { data } => {
                    for pdv in data {
                        command.extend_from_slice(&pdv.data);
                        if pdv.is_last {
                            let obj = InMemDicomObject::read_dataset_with_ts(
                                &command[..],
                                &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
                            )
                            .unwrap();
                            let int = |t| obj.element(t).unwrap().to_int::<u16>().unwrap();
                            let text = |t| {
                                obj.element_opt(t)
                                    .unwrap()
                                    .map(|e| e.to_str().unwrap().trim_end_matches(['\0', ' ']).to_owned())
                            };
                            return Answer {
                                status: int(tags::STATUS),
                                comment: text(tags::ERROR_COMMENT),
                                message_id: int(tags::MESSAGE_ID_BEING_RESPONDED_TO),
                                sop_class_uid: text(tags::AFFECTED_SOP_CLASS_UID).unwrap_or_default(),
                            };
                        }
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Sends `command` (bytes of the caller's making) as a command set on the context of
    /// `sop_class`; returns the next PDU the daemon sends, or the error if it closed.
    pub fn send_command_bytes(&mut self, sop_class: &str, command: &[u8]) -> Result<Pdu> {
        let (id, _) = self.context(sop_class);
        self.send(id, PDataValueType::Command, command, usize::MAX);
        self.assoc.receive()
    }

    /// A Storage Commitment report (N-EVENT-REPORT-RQ, event type `event_type`) with `data`
    /// (its event information, in the context's transfer syntax); returns the answer.
    pub fn event_report(&mut self, event_type: u16, data: &[u8]) -> Answer {
        const COMMITMENT: &str = "1.2.840.10008.1.20.1";
        let (id, _) = self.context(COMMITMENT);
        let message_id = self.bump();
        let command = command(vec![
            uid(tags::AFFECTED_SOP_CLASS_UID, COMMITMENT),
            us(tags::COMMAND_FIELD, 0x0100),
            us(tags::MESSAGE_ID, message_id),
            us(tags::COMMAND_DATA_SET_TYPE, 0x0000),
            uid(tags::AFFECTED_SOP_INSTANCE_UID, "1.2.840.10008.1.20.1.1"),
            us(tags::EVENT_TYPE_ID, event_type),
        ]);
        self.send(id, PDataValueType::Command, &command, usize::MAX);
        self.send(id, PDataValueType::Data, data, usize::MAX);
        self.answer()
    }

    /// The next message id (as [`store_command`] wants it).
    pub fn next_message_id(&mut self) -> u16 {
        self.bump()
    }

    fn bump(&mut self) -> u16 {
        self.next_id += 1;
        self.next_id
    }

    pub fn release(self) {
        self.assoc.release().expect("release");
    }
}

/// A C-STORE-RQ command set.
pub fn store_command(sop_class: &str, sop_instance: &str, message_id: u16) -> Vec<u8> {
    command(vec![
        uid(tags::AFFECTED_SOP_CLASS_UID, sop_class),
        us(tags::COMMAND_FIELD, 0x0001),
        us(tags::MESSAGE_ID, message_id),
        us(tags::PRIORITY, 0),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0000),
        uid(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance),
    ])
}

fn us(tag: dicom_core::Tag, value: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(value))
}

fn uid(tag: dicom_core::Tag, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::UI, PrimitiveValue::from(value))
}

fn command(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let obj = InMemDicomObject::command_from_element_iter(elements);
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased()).unwrap();
    out
}

/// Stores `instances` (CT, explicit VR little endian) over one association from a blocking
/// thread; each must be answered `Success`.
pub async fn store_all(addr: SocketAddr, instances: Vec<super::dataset::Instance>) {
    tokio::task::spawn_blocking(move || {
        let mut scu = connect_ct(addr, EXPLICIT_LE);
        for i in instances {
            let data = super::dataset::dataset(&i, EXPLICIT_LE);
            assert_eq!(scu.store(CT_IMAGE_STORAGE, &i.sop, &data, 16_000).status, 0);
        }
        scu.release();
    })
    .await
    .unwrap();
}
