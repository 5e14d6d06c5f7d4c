//! Wire constants (Part 2 §6): open enums that keep unknown values.

tpm_open_enum! {
    /// TPM_ALG_ID (Part 2 §6.3).
    pub struct TpmAlgId(u16) as "TPM_ALG_ID" {
        ERROR = 0x0000 => "TPM_ALG_ERROR",
        RSA = 0x0001 => "TPM_ALG_RSA",
        TDES = 0x0003 => "TPM_ALG_TDES",
        SHA1 = 0x0004 => "TPM_ALG_SHA1",
        HMAC = 0x0005 => "TPM_ALG_HMAC",
        AES = 0x0006 => "TPM_ALG_AES",
        MGF1 = 0x0007 => "TPM_ALG_MGF1",
        KEYEDHASH = 0x0008 => "TPM_ALG_KEYEDHASH",
        XOR = 0x000A => "TPM_ALG_XOR",
        SHA256 = 0x000B => "TPM_ALG_SHA256",
        SHA384 = 0x000C => "TPM_ALG_SHA384",
        SHA512 = 0x000D => "TPM_ALG_SHA512",
        NULL = 0x0010 => "TPM_ALG_NULL",
        SM3_256 = 0x0012 => "TPM_ALG_SM3_256",
        SM4 = 0x0013 => "TPM_ALG_SM4",
        RSASSA = 0x0014 => "TPM_ALG_RSASSA",
        RSAES = 0x0015 => "TPM_ALG_RSAES",
        RSAPSS = 0x0016 => "TPM_ALG_RSAPSS",
        OAEP = 0x0017 => "TPM_ALG_OAEP",
        ECDSA = 0x0018 => "TPM_ALG_ECDSA",
        ECDH = 0x0019 => "TPM_ALG_ECDH",
        ECDAA = 0x001A => "TPM_ALG_ECDAA",
        SM2 = 0x001B => "TPM_ALG_SM2",
        ECSCHNORR = 0x001C => "TPM_ALG_ECSCHNORR",
        ECMQV = 0x001D => "TPM_ALG_ECMQV",
        KDF1_SP800_56A = 0x0020 => "TPM_ALG_KDF1_SP800_56A",
        KDF2 = 0x0021 => "TPM_ALG_KDF2",
        KDF1_SP800_108 = 0x0022 => "TPM_ALG_KDF1_SP800_108",
        ECC = 0x0023 => "TPM_ALG_ECC",
        SYMCIPHER = 0x0025 => "TPM_ALG_SYMCIPHER",
        CAMELLIA = 0x0026 => "TPM_ALG_CAMELLIA",
        SHA3_256 = 0x0027 => "TPM_ALG_SHA3_256",
        SHA3_384 = 0x0028 => "TPM_ALG_SHA3_384",
        SHA3_512 = 0x0029 => "TPM_ALG_SHA3_512",
        CMAC = 0x003F => "TPM_ALG_CMAC",
        CTR = 0x0040 => "TPM_ALG_CTR",
        OFB = 0x0041 => "TPM_ALG_OFB",
        CBC = 0x0042 => "TPM_ALG_CBC",
        CFB = 0x0043 => "TPM_ALG_CFB",
        ECB = 0x0044 => "TPM_ALG_ECB",
    }
}

tpm_open_enum! {
    /// TPM_ECC_CURVE (Part 2 §6.4).
    pub struct TpmEccCurve(u16) as "TPM_ECC_CURVE" {
        NONE = 0x0000 => "TPM_ECC_NONE",
        NIST_P192 = 0x0001 => "TPM_ECC_NIST_P192",
        NIST_P224 = 0x0002 => "TPM_ECC_NIST_P224",
        NIST_P256 = 0x0003 => "TPM_ECC_NIST_P256",
        NIST_P384 = 0x0004 => "TPM_ECC_NIST_P384",
        NIST_P521 = 0x0005 => "TPM_ECC_NIST_P521",
        BN_P256 = 0x0010 => "TPM_ECC_BN_P256",
        BN_P638 = 0x0011 => "TPM_ECC_BN_P638",
        SM2_P256 = 0x0020 => "TPM_ECC_SM2_P256",
    }
}

tpm_open_enum! {
    /// TPM_CC (Part 2 §6.5.2).
    pub struct TpmCc(u32) as "TPM_CC" {
        NV_UNDEFINE_SPACE_SPECIAL = 0x011F => "TPM2_NV_UndefineSpaceSpecial",
        EVICT_CONTROL = 0x0120 => "TPM2_EvictControl",
        HIERARCHY_CONTROL = 0x0121 => "TPM2_HierarchyControl",
        NV_UNDEFINE_SPACE = 0x0122 => "TPM2_NV_UndefineSpace",
        CHANGE_EPS = 0x0124 => "TPM2_ChangeEPS",
        CHANGE_PPS = 0x0125 => "TPM2_ChangePPS",
        CLEAR = 0x0126 => "TPM2_Clear",
        CLEAR_CONTROL = 0x0127 => "TPM2_ClearControl",
        CLOCK_SET = 0x0128 => "TPM2_ClockSet",
        HIERARCHY_CHANGE_AUTH = 0x0129 => "TPM2_HierarchyChangeAuth",
        NV_DEFINE_SPACE = 0x012A => "TPM2_NV_DefineSpace",
        PCR_ALLOCATE = 0x012B => "TPM2_PCR_Allocate",
        PCR_SET_AUTH_POLICY = 0x012C => "TPM2_PCR_SetAuthPolicy",
        PP_COMMANDS = 0x012D => "TPM2_PP_Commands",
        SET_PRIMARY_POLICY = 0x012E => "TPM2_SetPrimaryPolicy",
        FIELD_UPGRADE_START = 0x012F => "TPM2_FieldUpgradeStart",
        CLOCK_RATE_ADJUST = 0x0130 => "TPM2_ClockRateAdjust",
        CREATE_PRIMARY = 0x0131 => "TPM2_CreatePrimary",
        NV_GLOBAL_WRITE_LOCK = 0x0132 => "TPM2_NV_GlobalWriteLock",
        GET_COMMAND_AUDIT_DIGEST = 0x0133 => "TPM2_GetCommandAuditDigest",
        NV_INCREMENT = 0x0134 => "TPM2_NV_Increment",
        NV_SET_BITS = 0x0135 => "TPM2_NV_SetBits",
        NV_EXTEND = 0x0136 => "TPM2_NV_Extend",
        NV_WRITE = 0x0137 => "TPM2_NV_Write",
        NV_WRITE_LOCK = 0x0138 => "TPM2_NV_WriteLock",
        DICTIONARY_ATTACK_LOCK_RESET = 0x0139 => "TPM2_DictionaryAttackLockReset",
        DICTIONARY_ATTACK_PARAMETERS = 0x013A => "TPM2_DictionaryAttackParameters",
        NV_CHANGE_AUTH = 0x013B => "TPM2_NV_ChangeAuth",
        PCR_EVENT = 0x013C => "TPM2_PCR_Event",
        PCR_RESET = 0x013D => "TPM2_PCR_Reset",
        SEQUENCE_COMPLETE = 0x013E => "TPM2_SequenceComplete",
        SET_ALGORITHM_SET = 0x013F => "TPM2_SetAlgorithmSet",
        SET_COMMAND_CODE_AUDIT_STATUS = 0x0140 => "TPM2_SetCommandCodeAuditStatus",
        FIELD_UPGRADE_DATA = 0x0141 => "TPM2_FieldUpgradeData",
        INCREMENTAL_SELF_TEST = 0x0142 => "TPM2_IncrementalSelfTest",
        SELF_TEST = 0x0143 => "TPM2_SelfTest",
        STARTUP = 0x0144 => "TPM2_Startup",
        SHUTDOWN = 0x0145 => "TPM2_Shutdown",
        STIR_RANDOM = 0x0146 => "TPM2_StirRandom",
        ACTIVATE_CREDENTIAL = 0x0147 => "TPM2_ActivateCredential",
        CERTIFY = 0x0148 => "TPM2_Certify",
        POLICY_NV = 0x0149 => "TPM2_PolicyNV",
        CERTIFY_CREATION = 0x014A => "TPM2_CertifyCreation",
        DUPLICATE = 0x014B => "TPM2_Duplicate",
        GET_TIME = 0x014C => "TPM2_GetTime",
        GET_SESSION_AUDIT_DIGEST = 0x014D => "TPM2_GetSessionAuditDigest",
        NV_READ = 0x014E => "TPM2_NV_Read",
        NV_READ_LOCK = 0x014F => "TPM2_NV_ReadLock",
        OBJECT_CHANGE_AUTH = 0x0150 => "TPM2_ObjectChangeAuth",
        POLICY_SECRET = 0x0151 => "TPM2_PolicySecret",
        REWRAP = 0x0152 => "TPM2_Rewrap",
        CREATE = 0x0153 => "TPM2_Create",
        ECDH_ZGEN = 0x0154 => "TPM2_ECDH_ZGen",
        HMAC = 0x0155 => "TPM2_HMAC",
        IMPORT = 0x0156 => "TPM2_Import",
        LOAD = 0x0157 => "TPM2_Load",
        QUOTE = 0x0158 => "TPM2_Quote",
        RSA_DECRYPT = 0x0159 => "TPM2_RSA_Decrypt",
        HMAC_START = 0x015B => "TPM2_HMAC_Start",
        SEQUENCE_UPDATE = 0x015C => "TPM2_SequenceUpdate",
        SIGN = 0x015D => "TPM2_Sign",
        UNSEAL = 0x015E => "TPM2_Unseal",
        POLICY_SIGNED = 0x0160 => "TPM2_PolicySigned",
        CONTEXT_LOAD = 0x0161 => "TPM2_ContextLoad",
        CONTEXT_SAVE = 0x0162 => "TPM2_ContextSave",
        ECDH_KEY_GEN = 0x0163 => "TPM2_ECDH_KeyGen",
        ENCRYPT_DECRYPT = 0x0164 => "TPM2_EncryptDecrypt",
        FLUSH_CONTEXT = 0x0165 => "TPM2_FlushContext",
        LOAD_EXTERNAL = 0x0167 => "TPM2_LoadExternal",
        MAKE_CREDENTIAL = 0x0168 => "TPM2_MakeCredential",
        NV_READ_PUBLIC = 0x0169 => "TPM2_NV_ReadPublic",
        POLICY_AUTHORIZE = 0x016A => "TPM2_PolicyAuthorize",
        POLICY_AUTH_VALUE = 0x016B => "TPM2_PolicyAuthValue",
        POLICY_COMMAND_CODE = 0x016C => "TPM2_PolicyCommandCode",
        POLICY_COUNTER_TIMER = 0x016D => "TPM2_PolicyCounterTimer",
        POLICY_CP_HASH = 0x016E => "TPM2_PolicyCpHash",
        POLICY_LOCALITY = 0x016F => "TPM2_PolicyLocality",
        POLICY_NAME_HASH = 0x0170 => "TPM2_PolicyNameHash",
        POLICY_OR = 0x0171 => "TPM2_PolicyOR",
        POLICY_TICKET = 0x0172 => "TPM2_PolicyTicket",
        READ_PUBLIC = 0x0173 => "TPM2_ReadPublic",
        RSA_ENCRYPT = 0x0174 => "TPM2_RSA_Encrypt",
        START_AUTH_SESSION = 0x0176 => "TPM2_StartAuthSession",
        VERIFY_SIGNATURE = 0x0177 => "TPM2_VerifySignature",
        ECC_PARAMETERS = 0x0178 => "TPM2_ECC_Parameters",
        FIRMWARE_READ = 0x0179 => "TPM2_FirmwareRead",
        GET_CAPABILITY = 0x017A => "TPM2_GetCapability",
        GET_RANDOM = 0x017B => "TPM2_GetRandom",
        GET_TEST_RESULT = 0x017C => "TPM2_GetTestResult",
        HASH = 0x017D => "TPM2_Hash",
        PCR_READ = 0x017E => "TPM2_PCR_Read",
        POLICY_PCR = 0x017F => "TPM2_PolicyPCR",
        POLICY_RESTART = 0x0180 => "TPM2_PolicyRestart",
        READ_CLOCK = 0x0181 => "TPM2_ReadClock",
        PCR_EXTEND = 0x0182 => "TPM2_PCR_Extend",
        PCR_SET_AUTH_VALUE = 0x0183 => "TPM2_PCR_SetAuthValue",
        NV_CERTIFY = 0x0184 => "TPM2_NV_Certify",
        EVENT_SEQUENCE_COMPLETE = 0x0185 => "TPM2_EventSequenceComplete",
        HASH_SEQUENCE_START = 0x0186 => "TPM2_HashSequenceStart",
        POLICY_PHYSICAL_PRESENCE = 0x0187 => "TPM2_PolicyPhysicalPresence",
        POLICY_DUPLICATION_SELECT = 0x0188 => "TPM2_PolicyDuplicationSelect",
        POLICY_GET_DIGEST = 0x0189 => "TPM2_PolicyGetDigest",
        TEST_PARMS = 0x018A => "TPM2_TestParms",
        COMMIT = 0x018B => "TPM2_Commit",
        POLICY_PASSWORD = 0x018C => "TPM2_PolicyPassword",
        ZGEN_2PHASE = 0x018D => "TPM2_ZGen_2Phase",
        EC_EPHEMERAL = 0x018E => "TPM2_EC_Ephemeral",
        POLICY_NV_WRITTEN = 0x018F => "TPM2_PolicyNvWritten",
        POLICY_TEMPLATE = 0x0190 => "TPM2_PolicyTemplate",
        CREATE_LOADED = 0x0191 => "TPM2_CreateLoaded",
        POLICY_AUTHORIZE_NV = 0x0192 => "TPM2_PolicyAuthorizeNV",
        ENCRYPT_DECRYPT2 = 0x0193 => "TPM2_EncryptDecrypt2",
    }
}

tpm_open_enum! {
    /// TPM_ST structure tags (Part 2 §6.9).
    pub struct TpmSt(u16) as "TPM_ST" {
        RSP_COMMAND = 0x00C4 => "TPM_ST_RSP_COMMAND",
        NULL = 0x8000 => "TPM_ST_NULL",
        NO_SESSIONS = 0x8001 => "TPM_ST_NO_SESSIONS",
        SESSIONS = 0x8002 => "TPM_ST_SESSIONS",
        ATTEST_NV = 0x8014 => "TPM_ST_ATTEST_NV",
        ATTEST_COMMAND_AUDIT = 0x8015 => "TPM_ST_ATTEST_COMMAND_AUDIT",
        ATTEST_SESSION_AUDIT = 0x8016 => "TPM_ST_ATTEST_SESSION_AUDIT",
        ATTEST_CERTIFY = 0x8017 => "TPM_ST_ATTEST_CERTIFY",
        ATTEST_QUOTE = 0x8018 => "TPM_ST_ATTEST_QUOTE",
        ATTEST_TIME = 0x8019 => "TPM_ST_ATTEST_TIME",
        ATTEST_CREATION = 0x801A => "TPM_ST_ATTEST_CREATION",
        CREATION = 0x8021 => "TPM_ST_CREATION",
        VERIFIED = 0x8022 => "TPM_ST_VERIFIED",
        AUTH_SECRET = 0x8023 => "TPM_ST_AUTH_SECRET",
        HASHCHECK = 0x8024 => "TPM_ST_HASHCHECK",
        AUTH_SIGNED = 0x8025 => "TPM_ST_AUTH_SIGNED",
        FU_MANIFEST = 0x8029 => "TPM_ST_FU_MANIFEST",
    }
}

tpm_open_enum! {
    /// TPM_SU startup/shutdown types (Part 2 §6.10).
    pub struct TpmSu(u16) as "TPM_SU" {
        CLEAR = 0x0000 => "TPM_SU_CLEAR",
        STATE = 0x0001 => "TPM_SU_STATE",
    }
}

tpm_open_enum! {
    /// TPM_SE session types (Part 2 §6.11).
    pub struct TpmSe(u8) as "TPM_SE" {
        HMAC = 0x00 => "TPM_SE_HMAC",
        POLICY = 0x01 => "TPM_SE_POLICY",
        TRIAL = 0x03 => "TPM_SE_TRIAL",
    }
}

tpm_open_enum! {
    /// TPM_CAP capability selectors (Part 2 §6.12).
    pub struct TpmCap(u32) as "TPM_CAP" {
        ALGS = 0x0000_0000 => "TPM_CAP_ALGS",
        HANDLES = 0x0000_0001 => "TPM_CAP_HANDLES",
        COMMANDS = 0x0000_0002 => "TPM_CAP_COMMANDS",
        PP_COMMANDS = 0x0000_0003 => "TPM_CAP_PP_COMMANDS",
        AUDIT_COMMANDS = 0x0000_0004 => "TPM_CAP_AUDIT_COMMANDS",
        PCRS = 0x0000_0005 => "TPM_CAP_PCRS",
        TPM_PROPERTIES = 0x0000_0006 => "TPM_CAP_TPM_PROPERTIES",
        PCR_PROPERTIES = 0x0000_0007 => "TPM_CAP_PCR_PROPERTIES",
        ECC_CURVES = 0x0000_0008 => "TPM_CAP_ECC_CURVES",
        AUTH_POLICIES = 0x0000_0009 => "TPM_CAP_AUTH_POLICIES",
        ACT = 0x0000_000A => "TPM_CAP_ACT",
        VENDOR_PROPERTY = 0x0000_0100 => "TPM_CAP_VENDOR_PROPERTY",
    }
}

tpm_open_enum! {
    /// TPM_PT properties (Part 2 §6.13), the ones `tpmkey info` reads.
    pub struct TpmPt(u32) as "TPM_PT" {
        FAMILY_INDICATOR = 0x100 => "TPM_PT_FAMILY_INDICATOR",
        LEVEL = 0x101 => "TPM_PT_LEVEL",
        REVISION = 0x102 => "TPM_PT_REVISION",
        DAY_OF_YEAR = 0x103 => "TPM_PT_DAY_OF_YEAR",
        YEAR = 0x104 => "TPM_PT_YEAR",
        MANUFACTURER = 0x105 => "TPM_PT_MANUFACTURER",
        VENDOR_STRING_1 = 0x106 => "TPM_PT_VENDOR_STRING_1",
        VENDOR_STRING_2 = 0x107 => "TPM_PT_VENDOR_STRING_2",
        VENDOR_STRING_3 = 0x108 => "TPM_PT_VENDOR_STRING_3",
        VENDOR_STRING_4 = 0x109 => "TPM_PT_VENDOR_STRING_4",
        VENDOR_TPM_TYPE = 0x10A => "TPM_PT_VENDOR_TPM_TYPE",
        FIRMWARE_VERSION_1 = 0x10B => "TPM_PT_FIRMWARE_VERSION_1",
        FIRMWARE_VERSION_2 = 0x10C => "TPM_PT_FIRMWARE_VERSION_2",
        INPUT_BUFFER = 0x10D => "TPM_PT_INPUT_BUFFER",
        HR_TRANSIENT_MIN = 0x10E => "TPM_PT_HR_TRANSIENT_MIN",
        HR_PERSISTENT_MIN = 0x10F => "TPM_PT_HR_PERSISTENT_MIN",
        HR_LOADED_MIN = 0x110 => "TPM_PT_HR_LOADED_MIN",
        ACTIVE_SESSIONS_MAX = 0x111 => "TPM_PT_ACTIVE_SESSIONS_MAX",
        PCR_COUNT = 0x112 => "TPM_PT_PCR_COUNT",
        PCR_SELECT_MIN = 0x113 => "TPM_PT_PCR_SELECT_MIN",
        CONTEXT_GAP_MAX = 0x114 => "TPM_PT_CONTEXT_GAP_MAX",
        NV_COUNTERS_MAX = 0x116 => "TPM_PT_NV_COUNTERS_MAX",
        NV_INDEX_MAX = 0x117 => "TPM_PT_NV_INDEX_MAX",
        MEMORY = 0x118 => "TPM_PT_MEMORY",
        CLOCK_UPDATE = 0x119 => "TPM_PT_CLOCK_UPDATE",
        CONTEXT_HASH = 0x11A => "TPM_PT_CONTEXT_HASH",
        CONTEXT_SYM = 0x11B => "TPM_PT_CONTEXT_SYM",
        CONTEXT_SYM_SIZE = 0x11C => "TPM_PT_CONTEXT_SYM_SIZE",
        ORDERLY_COUNT = 0x11D => "TPM_PT_ORDERLY_COUNT",
        MAX_COMMAND_SIZE = 0x11E => "TPM_PT_MAX_COMMAND_SIZE",
        MAX_RESPONSE_SIZE = 0x11F => "TPM_PT_MAX_RESPONSE_SIZE",
        MAX_DIGEST = 0x120 => "TPM_PT_MAX_DIGEST",
        MAX_OBJECT_CONTEXT = 0x121 => "TPM_PT_MAX_OBJECT_CONTEXT",
        MAX_SESSION_CONTEXT = 0x122 => "TPM_PT_MAX_SESSION_CONTEXT",
        PS_FAMILY_INDICATOR = 0x123 => "TPM_PT_PS_FAMILY_INDICATOR",
        PS_LEVEL = 0x124 => "TPM_PT_PS_LEVEL",
        PS_REVISION = 0x125 => "TPM_PT_PS_REVISION",
        PS_DAY_OF_YEAR = 0x126 => "TPM_PT_PS_DAY_OF_YEAR",
        PS_YEAR = 0x127 => "TPM_PT_PS_YEAR",
        SPLIT_MAX = 0x128 => "TPM_PT_SPLIT_MAX",
        TOTAL_COMMANDS = 0x129 => "TPM_PT_TOTAL_COMMANDS",
        LIBRARY_COMMANDS = 0x12A => "TPM_PT_LIBRARY_COMMANDS",
        VENDOR_COMMANDS = 0x12B => "TPM_PT_VENDOR_COMMANDS",
        NV_BUFFER_MAX = 0x12C => "TPM_PT_NV_BUFFER_MAX",
        MODES = 0x12D => "TPM_PT_MODES",
        MAX_CAP_BUFFER = 0x12E => "TPM_PT_MAX_CAP_BUFFER",
        PERMANENT = 0x200 => "TPM_PT_PERMANENT",
        STARTUP_CLEAR = 0x201 => "TPM_PT_STARTUP_CLEAR",
        HR_NV_INDEX = 0x202 => "TPM_PT_HR_NV_INDEX",
        HR_LOADED = 0x203 => "TPM_PT_HR_LOADED",
        HR_LOADED_AVAIL = 0x204 => "TPM_PT_HR_LOADED_AVAIL",
        HR_ACTIVE = 0x205 => "TPM_PT_HR_ACTIVE",
        HR_ACTIVE_AVAIL = 0x206 => "TPM_PT_HR_ACTIVE_AVAIL",
        HR_TRANSIENT_AVAIL = 0x207 => "TPM_PT_HR_TRANSIENT_AVAIL",
        HR_PERSISTENT = 0x208 => "TPM_PT_HR_PERSISTENT",
        HR_PERSISTENT_AVAIL = 0x209 => "TPM_PT_HR_PERSISTENT_AVAIL",
        NV_COUNTERS = 0x20A => "TPM_PT_NV_COUNTERS",
        NV_COUNTERS_AVAIL = 0x20B => "TPM_PT_NV_COUNTERS_AVAIL",
        ALGORITHM_SET = 0x20C => "TPM_PT_ALGORITHM_SET",
        LOADED_CURVES = 0x20D => "TPM_PT_LOADED_CURVES",
        LOCKOUT_COUNTER = 0x20E => "TPM_PT_LOCKOUT_COUNTER",
        MAX_AUTH_FAIL = 0x20F => "TPM_PT_MAX_AUTH_FAIL",
        LOCKOUT_INTERVAL = 0x210 => "TPM_PT_LOCKOUT_INTERVAL",
        LOCKOUT_RECOVERY = 0x211 => "TPM_PT_LOCKOUT_RECOVERY",
        NV_WRITE_RECOVERY = 0x212 => "TPM_PT_NV_WRITE_RECOVERY",
        AUDIT_COUNTER_0 = 0x213 => "TPM_PT_AUDIT_COUNTER_0",
        AUDIT_COUNTER_1 = 0x214 => "TPM_PT_AUDIT_COUNTER_1",
    }
}

tpm_open_enum! {
    /// TPM_HANDLE (Part 2 §7): any handle. The named values are the permanent
    /// handles (TPM_RH, TPM_RS) tpmkey uses; the first byte is the handle type (TPM_HT).
    pub struct TpmHandle(u32) as "TPM_HANDLE" {
        RH_OWNER = 0x4000_0001 => "TPM_RH_OWNER",
        RH_NULL = 0x4000_0007 => "TPM_RH_NULL",
        RH_UNASSIGNED = 0x4000_0008 => "TPM_RH_UNASSIGNED",
        RS_PW = 0x4000_0009 => "TPM_RS_PW",
        RH_LOCKOUT = 0x4000_000A => "TPM_RH_LOCKOUT",
        RH_ENDORSEMENT = 0x4000_000B => "TPM_RH_ENDORSEMENT",
        RH_PLATFORM = 0x4000_000C => "TPM_RH_PLATFORM",
        RH_PLATFORM_NV = 0x4000_000D => "TPM_RH_PLATFORM_NV",
    }
}

/// TPM_HT handle types (Part 2 §7.2): the most significant byte of a handle.
pub mod ht {
    /// PCR.
    pub const PCR: u8 = 0x00;
    /// NV index.
    pub const NV_INDEX: u8 = 0x01;
    /// HMAC session.
    pub const HMAC_SESSION: u8 = 0x02;
    /// Policy session.
    pub const POLICY_SESSION: u8 = 0x03;
    /// Permanent handle.
    pub const PERMANENT: u8 = 0x40;
    /// Transient object.
    pub const TRANSIENT: u8 = 0x80;
    /// Persistent object.
    pub const PERSISTENT: u8 = 0x81;
}

impl TpmHandle {
    /// The handle type (TPM_HT), the most significant byte.
    pub fn handle_type(self) -> u8 {
        self.0.to_be_bytes()[0]
    }

    /// The conventional persistent handle of the storage root key.
    pub const SRK: TpmHandle = TpmHandle(0x8100_0001);

    /// True for handles whose Name is the handle itself (permanent handles, PCRs,
    /// sessions; Part 1 §16).
    pub fn name_is_handle(self) -> bool {
        matches!(
            self.handle_type(),
            ht::PCR | ht::HMAC_SESSION | ht::POLICY_SESSION | ht::PERMANENT
        )
    }
}
