//! C-FIND on an association: the identifier is collected, then the worklist SCP answers it
//! ([`crate::dicom::worklist`]) before the association reads its next PDU.

use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValue};

use super::{Association, End, abort};
use crate::dicom::worklist::{self, AnswerEnd, Asker, Pending};
use crate::net::Stream;

impl<S: Stream> Association<S> {
    /// A C-FIND-RQ: its identifier follows as data.
    pub(super) fn on_find(&mut self, message_id: u16, sop_class_uid: String, context_id: u8, transfer_syntax: &str) {
        self.find = Some(Pending::new(message_id, context_id, sop_class_uid, transfer_syntax.to_owned()));
    }

    /// One fragment of the identifier; the answer once it is complete.
    pub(super) async fn find_data(&mut self, pdv: PDataValue) -> Result<(), End> {
        let Some(find) = self.find.as_mut() else { return Ok(()) };
        if find.context_id != pdv.presentation_context_id {
            return Err(End::Protocol("identifier on another presentation context".into()));
        }
        find.add(&pdv.data);
        if !pdv.is_last {
            return Ok(());
        }
        let find = self.find.take().expect("checked above");
        let n = &self.negotiated;
        let asker = Asker {
            calling_ae: &n.calling_ae,
            called_ae: &n.called_ae,
            peer: self.peer,
            identity: self.identity.as_ref(),
            max_pdu: n.peer_max_pdu,
        };
        match worklist::answer(&mut self.wire, find, asker, &self.ctx).await {
            Ok(()) => Ok(()),
            Err(AnswerEnd::Wire(e)) => Err(End::Wire(e)),
            Err(AnswerEnd::PeerAbort) => Err(End::PeerAbort),
            Err(AnswerEnd::Protocol(why)) => {
                let _ = self.wire.write(&abort(AbortRQServiceProviderReason::UnexpectedPdu)).await;
                Err(End::Protocol(why))
            }
        }
    }
}
