//! Which byte layout a transfer syntax gives the dataset.
//!
//! Only the dataset's own encoding matters here: every encapsulated (compressed pixel data)
//! transfer syntax encodes the dataset as explicit VR little endian, and the scanner stops
//! before the pixel data, so it never needs the codec (PS3.5 §A.4).

/// How the elements of a dataset (or of one sequence's content) are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// Tag, 4-byte length; the VR comes from the dictionary (PS3.5 §7.1.3).
    ImplicitLe,
    /// Tag, VR, 2- or 4-byte length, little endian (PS3.5 §7.1.2).
    ExplicitLe,
    /// As explicit little endian, but every binary number big endian (retired, PS3.5 §A.3).
    ExplicitBe,
}

impl Encoding {
    pub(super) fn is_explicit(self) -> bool {
        !matches!(self, Encoding::ImplicitLe)
    }

    pub(super) fn u16(self, bytes: [u8; 2]) -> u16 {
        match self {
            Encoding::ExplicitBe => u16::from_be_bytes(bytes),
            _ => u16::from_le_bytes(bytes),
        }
    }

    pub(super) fn u32(self, bytes: [u8; 4]) -> u32 {
        match self {
            Encoding::ExplicitBe => u32::from_be_bytes(bytes),
            _ => u32::from_le_bytes(bytes),
        }
    }
}

/// The dataset layout of a transfer syntax, and whether the dataset is deflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) encoding: Encoding,
    /// The whole dataset is a raw deflate stream (RFC 1951, no zlib header: PS3.5 §A.5).
    pub(super) deflated: bool,
}

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const ENCAPSULATED_UNCOMPRESSED_LE: &str = "1.2.840.10008.1.2.1.98";
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
const DEFLATED_IMAGE_FRAME: &str = "1.2.840.10008.1.2.8.1";
/// JPEG, JPEG-LS, JPEG 2000, HTJ2K, JPIP, MPEG-2, MPEG-4, HEVC, JPEG XL: all explicit VR LE.
const IMAGE_COMPRESSION_ROOT: &str = "1.2.840.10008.1.2.4.";
/// JPIP Referenced Deflate and JPIP HTJ2K Referenced Deflate deflate the dataset too.
const JPIP_DEFLATED: [&str; 2] = ["1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"];

/// The layout for `uid` (trailing NUL or space padding ignored), or `None` if unsupported.
pub(super) fn layout(uid: &str) -> Option<Layout> {
    let uid = uid.trim_end_matches(['\0', ' ']);
    let plain = |encoding| Some(Layout { encoding, deflated: false });
    let deflated = Some(Layout { encoding: Encoding::ExplicitLe, deflated: true });
    match uid {
        IMPLICIT_LE => plain(Encoding::ImplicitLe),
        EXPLICIT_LE | ENCAPSULATED_UNCOMPRESSED_LE | RLE_LOSSLESS | DEFLATED_IMAGE_FRAME => plain(Encoding::ExplicitLe),
        EXPLICIT_BE => plain(Encoding::ExplicitBe),
        DEFLATED_LE => deflated,
        _ if JPIP_DEFLATED.contains(&uid) => deflated,
        // Unknown members of the image compression family are assumed explicit VR LE, as
        // every member so far is.
        _ if uid.starts_with(IMAGE_COMPRESSION_ROOT) && crate::ids::is_valid_uid(uid) => plain(Encoding::ExplicitLe),
        _ => None,
    }
}
