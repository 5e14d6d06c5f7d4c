//! TPM_RC response codes (Part 2 §6.6), decoded totally: every 32-bit value gives a
//! [`ResponseCode`] whose parts and name can be read without panicking
//! (CVE-2023-22745 was a TSS crashing on a crafted code).
//!
//! Decoding order (Part 2 §6.6.2, Table 16): the format bit (bit 7) first; a
//! format-one code then carries a parameter (bit 6), else a session (bit 11), else a
//! handle number. Only format-zero codes can be warnings (bit 11), vendor codes
//! (bit 10) or TPM 1.2 codes (bit 8 clear). `0x098E` is TPM_RC_AUTH_FAIL on
//! session 1, not a warning.

use core::fmt;

/// A TPM response code as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResponseCode(pub u32);

/// What a format-one code points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RcIndex {
    /// No index (format-zero codes, or handle number 0).
    None,
    /// Parameter number (1-15).
    Parameter(u8),
    /// Session number (1-7).
    Session(u8),
    /// Handle number (1-7).
    Handle(u8),
}

/// The layer that produced the code (bits 16-23; tpm2-tss conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RcLayer {
    /// The TPM itself.
    Tpm,
    /// The kernel or a daemon resource manager (0x0B; 0x0A for the TPM's own RM warnings).
    ResourceManager,
    /// Another software layer's code.
    Other(u8),
}

const RC_VER1: u32 = 0x100;
const RC_FMT1: u32 = 0x080;
const RC_WARN: u32 = 0x900;

macro_rules! rc_names {
    ($($c:ident = $v:expr => $n:literal;)*) => {
        #[allow(missing_docs)]
        impl ResponseCode {
            $(pub const $c: ResponseCode = ResponseCode($v);)*
        }
        fn base_name(base: u32) -> Option<&'static str> {
            match base {
                $($v => Some($n),)*
                _ => None,
            }
        }
    };
}

rc_names! {
    SUCCESS = 0x000 => "TPM_RC_SUCCESS";
    BAD_TAG = 0x01E => "TPM_RC_BAD_TAG";
    // Format-zero errors (RC_VER1 + n).
    INITIALIZE = 0x100 => "TPM_RC_INITIALIZE";
    FAILURE = 0x101 => "TPM_RC_FAILURE";
    SEQUENCE = 0x103 => "TPM_RC_SEQUENCE";
    PRIVATE = 0x10B => "TPM_RC_PRIVATE";
    HMAC = 0x119 => "TPM_RC_HMAC";
    DISABLED = 0x120 => "TPM_RC_DISABLED";
    EXCLUSIVE = 0x121 => "TPM_RC_EXCLUSIVE";
    AUTH_TYPE = 0x124 => "TPM_RC_AUTH_TYPE";
    AUTH_MISSING = 0x125 => "TPM_RC_AUTH_MISSING";
    POLICY = 0x126 => "TPM_RC_POLICY";
    PCR = 0x127 => "TPM_RC_PCR";
    PCR_CHANGED = 0x128 => "TPM_RC_PCR_CHANGED";
    UPGRADE = 0x12D => "TPM_RC_UPGRADE";
    TOO_MANY_CONTEXTS = 0x12E => "TPM_RC_TOO_MANY_CONTEXTS";
    AUTH_UNAVAILABLE = 0x12F => "TPM_RC_AUTH_UNAVAILABLE";
    REBOOT = 0x130 => "TPM_RC_REBOOT";
    UNBALANCED = 0x131 => "TPM_RC_UNBALANCED";
    COMMAND_SIZE = 0x142 => "TPM_RC_COMMAND_SIZE";
    COMMAND_CODE = 0x143 => "TPM_RC_COMMAND_CODE";
    AUTHSIZE = 0x144 => "TPM_RC_AUTHSIZE";
    AUTH_CONTEXT = 0x145 => "TPM_RC_AUTH_CONTEXT";
    NV_RANGE = 0x146 => "TPM_RC_NV_RANGE";
    NV_SIZE = 0x147 => "TPM_RC_NV_SIZE";
    NV_LOCKED = 0x148 => "TPM_RC_NV_LOCKED";
    NV_AUTHORIZATION = 0x149 => "TPM_RC_NV_AUTHORIZATION";
    NV_UNINITIALIZED = 0x14A => "TPM_RC_NV_UNINITIALIZED";
    NV_SPACE = 0x14B => "TPM_RC_NV_SPACE";
    NV_DEFINED = 0x14C => "TPM_RC_NV_DEFINED";
    BAD_CONTEXT = 0x150 => "TPM_RC_BAD_CONTEXT";
    CPHASH = 0x151 => "TPM_RC_CPHASH";
    PARENT = 0x152 => "TPM_RC_PARENT";
    NEEDS_TEST = 0x153 => "TPM_RC_NEEDS_TEST";
    NO_RESULT = 0x154 => "TPM_RC_NO_RESULT";
    SENSITIVE = 0x155 => "TPM_RC_SENSITIVE";
    // Format-one errors (RC_FMT1 + n).
    ASYMMETRIC = 0x081 => "TPM_RC_ASYMMETRIC";
    ATTRIBUTES = 0x082 => "TPM_RC_ATTRIBUTES";
    HASH = 0x083 => "TPM_RC_HASH";
    VALUE = 0x084 => "TPM_RC_VALUE";
    HIERARCHY = 0x085 => "TPM_RC_HIERARCHY";
    KEY_SIZE = 0x087 => "TPM_RC_KEY_SIZE";
    MGF = 0x088 => "TPM_RC_MGF";
    MODE = 0x089 => "TPM_RC_MODE";
    TYPE = 0x08A => "TPM_RC_TYPE";
    HANDLE = 0x08B => "TPM_RC_HANDLE";
    KDF = 0x08C => "TPM_RC_KDF";
    RANGE = 0x08D => "TPM_RC_RANGE";
    AUTH_FAIL = 0x08E => "TPM_RC_AUTH_FAIL";
    NONCE = 0x08F => "TPM_RC_NONCE";
    PP = 0x090 => "TPM_RC_PP";
    SCHEME = 0x092 => "TPM_RC_SCHEME";
    SIZE = 0x095 => "TPM_RC_SIZE";
    SYMMETRIC = 0x096 => "TPM_RC_SYMMETRIC";
    TAG = 0x097 => "TPM_RC_TAG";
    SELECTOR = 0x098 => "TPM_RC_SELECTOR";
    INSUFFICIENT = 0x09A => "TPM_RC_INSUFFICIENT";
    SIGNATURE = 0x09B => "TPM_RC_SIGNATURE";
    KEY = 0x09C => "TPM_RC_KEY";
    POLICY_FAIL = 0x09D => "TPM_RC_POLICY_FAIL";
    INTEGRITY = 0x09F => "TPM_RC_INTEGRITY";
    TICKET = 0x0A0 => "TPM_RC_TICKET";
    RESERVED_BITS = 0x0A1 => "TPM_RC_RESERVED_BITS";
    BAD_AUTH = 0x0A2 => "TPM_RC_BAD_AUTH";
    EXPIRED = 0x0A3 => "TPM_RC_EXPIRED";
    POLICY_CC = 0x0A4 => "TPM_RC_POLICY_CC";
    BINDING = 0x0A5 => "TPM_RC_BINDING";
    CURVE = 0x0A6 => "TPM_RC_CURVE";
    ECC_POINT = 0x0A7 => "TPM_RC_ECC_POINT";
    FW_LIMITED = 0x0A8 => "TPM_RC_FW_LIMITED";
    SVN_LIMITED = 0x0A9 => "TPM_RC_SVN_LIMITED";
    // Warnings (RC_WARN + n).
    CONTEXT_GAP = 0x901 => "TPM_RC_CONTEXT_GAP";
    OBJECT_MEMORY = 0x902 => "TPM_RC_OBJECT_MEMORY";
    SESSION_MEMORY = 0x903 => "TPM_RC_SESSION_MEMORY";
    MEMORY = 0x904 => "TPM_RC_MEMORY";
    SESSION_HANDLES = 0x905 => "TPM_RC_SESSION_HANDLES";
    OBJECT_HANDLES = 0x906 => "TPM_RC_OBJECT_HANDLES";
    LOCALITY = 0x907 => "TPM_RC_LOCALITY";
    YIELDED = 0x908 => "TPM_RC_YIELDED";
    CANCELED = 0x909 => "TPM_RC_CANCELED";
    TESTING = 0x90A => "TPM_RC_TESTING";
    REFERENCE_H0 = 0x910 => "TPM_RC_REFERENCE_H0";
    REFERENCE_H1 = 0x911 => "TPM_RC_REFERENCE_H1";
    REFERENCE_H2 = 0x912 => "TPM_RC_REFERENCE_H2";
    REFERENCE_H3 = 0x913 => "TPM_RC_REFERENCE_H3";
    REFERENCE_H4 = 0x914 => "TPM_RC_REFERENCE_H4";
    REFERENCE_H5 = 0x915 => "TPM_RC_REFERENCE_H5";
    REFERENCE_H6 = 0x916 => "TPM_RC_REFERENCE_H6";
    REFERENCE_S0 = 0x918 => "TPM_RC_REFERENCE_S0";
    REFERENCE_S1 = 0x919 => "TPM_RC_REFERENCE_S1";
    REFERENCE_S2 = 0x91A => "TPM_RC_REFERENCE_S2";
    REFERENCE_S3 = 0x91B => "TPM_RC_REFERENCE_S3";
    REFERENCE_S4 = 0x91C => "TPM_RC_REFERENCE_S4";
    REFERENCE_S5 = 0x91D => "TPM_RC_REFERENCE_S5";
    REFERENCE_S6 = 0x91E => "TPM_RC_REFERENCE_S6";
    NV_RATE = 0x920 => "TPM_RC_NV_RATE";
    LOCKOUT = 0x921 => "TPM_RC_LOCKOUT";
    RETRY = 0x922 => "TPM_RC_RETRY";
    NV_UNAVAILABLE = 0x923 => "TPM_RC_NV_UNAVAILABLE";
}

impl ResponseCode {
    /// The layer (bits 16-23).
    pub fn layer(self) -> RcLayer {
        match (self.0 >> 16) as u8 {
            0 => RcLayer::Tpm,
            0x0B => RcLayer::ResourceManager,
            n => RcLayer::Other(n),
        }
    }

    /// The code without layer bits.
    fn low(self) -> u32 {
        self.0 & 0xFFFF
    }

    /// True for codes a TPM, or the kernel's resource manager in front of it, can
    /// send: bits 12-15 and 24-31 clear, layer 0 or 0x0B. Anything else (e.g.
    /// 0xFFFFFFFF from a broken or hostile TPM) has no parts: no base code, index,
    /// name or warning, and prints as an unknown code.
    pub fn is_in_range(self) -> bool {
        self.0 & 0xFF00_F000 == 0 && matches!(self.layer(), RcLayer::Tpm | RcLayer::ResourceManager)
    }

    /// True for format-one codes (bit 7).
    pub fn is_format_one(self) -> bool {
        self.is_in_range() && self.low() & RC_FMT1 != 0
    }

    /// True for TPM 1.2 codes: format zero with RC_VER1 clear (and not success).
    pub fn is_tpm12(self) -> bool {
        self.is_in_range() && !self.is_format_one() && self.low() & RC_VER1 == 0 && self.low() != 0
    }

    /// True for vendor-defined format-zero codes (bit 10).
    pub fn is_vendor(self) -> bool {
        self.is_in_range() && !self.is_format_one() && !self.is_tpm12() && self.low() & 0x400 != 0
    }

    /// True for warnings: format zero, RC_VER1 and bit 11 set, not vendor.
    pub fn is_warning(self) -> bool {
        self.is_in_range()
            && !self.is_format_one()
            && !self.is_tpm12()
            && !self.is_vendor()
            && self.low() & 0x800 != 0
    }

    /// The code with its index and layer removed, comparable with the constants
    /// (e.g. `0x098E` → [`ResponseCode::AUTH_FAIL`]). An out-of-range code (see
    /// [`ResponseCode::is_in_range`]) is its own base, equal to no constant.
    pub fn base(self) -> ResponseCode {
        let low = self.low();
        if !self.is_in_range() {
            self
        } else if low == 0 {
            ResponseCode::SUCCESS
        } else if self.is_format_one() {
            ResponseCode(RC_FMT1 | (low & 0x3F))
        } else if self.is_tpm12() || self.is_vendor() {
            ResponseCode(low)
        } else if self.is_warning() {
            ResponseCode(RC_WARN | (low & 0x7F))
        } else {
            ResponseCode(RC_VER1 | (low & 0x7F))
        }
    }

    /// What a format-one code points at.
    pub fn index(self) -> RcIndex {
        if !self.is_format_one() {
            return RcIndex::None;
        }
        let low = self.low();
        if low & 0x040 != 0 {
            RcIndex::Parameter(((low >> 8) & 0xF) as u8)
        } else if low & 0x800 != 0 {
            RcIndex::Session(((low >> 8) & 0x7) as u8)
        } else {
            match ((low >> 8) & 0x7) as u8 {
                0 => RcIndex::None,
                n => RcIndex::Handle(n),
            }
        }
    }

    /// TPM_RC_RETRY, TPM_RC_YIELDED or TPM_RC_TESTING: resend the same command
    /// unchanged (Part 3 §5.9 / Part 1 §18.4).
    pub fn is_retry(self) -> bool {
        self.layer() == RcLayer::Tpm
            && matches!(
                self.base(),
                ResponseCode::RETRY | ResponseCode::YIELDED | ResponseCode::TESTING
            )
            && self.is_warning()
    }

    /// The spec name of the base code, when known.
    pub fn name(self) -> Option<&'static str> {
        if self.is_tpm12() || self.is_vendor() {
            return None;
        }
        base_name(self.base().0)
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_in_range() {
            return write!(f, "unknown response code {:#010x}", self.0);
        }
        match self.name() {
            Some(n) => f.write_str(n)?,
            None if self.is_tpm12() => write!(f, "TPM 1.2 error {:#x}", self.low())?,
            None if self.is_vendor() => write!(f, "vendor error {:#x}", self.low())?,
            None => write!(f, "TPM_RC {:#x}", self.base().0)?,
        }
        match self.index() {
            RcIndex::None => {}
            RcIndex::Parameter(n) => write!(f, " (parameter {n})")?,
            RcIndex::Session(n) => write!(f, " (session {n})")?,
            RcIndex::Handle(n) => write!(f, " (handle {n})")?,
        }
        match self.layer() {
            RcLayer::Tpm => Ok(()),
            RcLayer::ResourceManager => write!(f, " from the resource manager"),
            RcLayer::Other(n) => write!(f, " from layer {n}"),
        }
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x} {}", self.0, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_one_before_warning() {
        let rc = ResponseCode(0x098E);
        assert_eq!(rc.base(), ResponseCode::AUTH_FAIL);
        assert_eq!(rc.index(), RcIndex::Session(1));
        assert!(!rc.is_warning());
        assert_eq!(rc.to_string(), "TPM_RC_AUTH_FAIL (session 1)");
    }

    #[test]
    fn out_of_range_codes_are_unknown() {
        for v in [
            0xFFFF_FFFFu32,
            0x0100_008E,
            0x00FF_098E,
            0x0000_F08E,
            0x0006_098E,
        ] {
            let rc = ResponseCode(v);
            assert!(!rc.is_in_range(), "{v:#x}");
            assert_eq!(rc.to_string(), format!("unknown response code {v:#010x}"));
            assert_eq!(rc.base(), rc);
            assert_ne!(rc.base(), ResponseCode::AUTH_FAIL);
            assert_eq!(rc.index(), RcIndex::None);
            assert!(rc.name().is_none() && !rc.is_warning() && !rc.is_retry());
        }
        // The kernel resource manager's layer is in range.
        let rm = ResponseCode(0x000B_0910);
        assert!(rm.is_in_range());
        assert_eq!(rm.base(), ResponseCode::REFERENCE_H0);
        assert_eq!(
            rm.to_string(),
            "TPM_RC_REFERENCE_H0 from the resource manager"
        );
    }

    #[test]
    fn decoding_is_total() {
        for v in [
            0u32,
            1,
            0x7F,
            0x80,
            0xFF,
            0xFFFF,
            0xFFFF_FFFF,
            0x8000_0000,
            0x00FF_0FFF,
        ] {
            let rc = ResponseCode(v);
            let _ = (
                rc.to_string(),
                rc.base(),
                rc.index(),
                rc.layer(),
                rc.is_retry(),
            );
        }
        let mut v = 0u32;
        while v < 0x1_0000 {
            let _ = ResponseCode(v).to_string();
            v += 1;
        }
    }
}
