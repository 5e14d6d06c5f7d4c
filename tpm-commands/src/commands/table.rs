//! The command table: every command tpmkey sends, with its Part 3 section. Handle
//! roles follow each command's "Auth Role" column: `auth` handles need a session.

use crate::buffers::*;
use crate::constants::*;
use crate::structures::*;

tpm_commands! {
    /// Part 3 §9.3 TPM2_Startup.
    Startup / StartupResponse = STARTUP, "TPM2_Startup" {
        handles {}
        params { startup_type: TpmSu }
        response_handles {}
        response {}
    }

    /// Part 3 §9.4 TPM2_Shutdown.
    Shutdown / ShutdownResponse = SHUTDOWN, "TPM2_Shutdown" {
        handles {}
        params { shutdown_type: TpmSu }
        response_handles {}
        response {}
    }

    /// Part 3 §10.2 TPM2_SelfTest.
    SelfTest / SelfTestResponse = SELF_TEST, "TPM2_SelfTest" {
        handles {}
        params { full_test: bool }
        response_handles {}
        response {}
    }

    /// Part 3 §10.4 TPM2_GetTestResult.
    GetTestResult / GetTestResultResponse = GET_TEST_RESULT, "TPM2_GetTestResult" {
        handles {}
        params {}
        response_handles {}
        response { out_data: Tpm2bMaxBuffer, test_result: u32 }
    }

    /// Part 3 §11.1 TPM2_StartAuthSession.
    StartAuthSession / StartAuthSessionResponse = START_AUTH_SESSION, "TPM2_StartAuthSession" {
        handles { tpm_key: noauth, bind: noauth }
        params {
            nonce_caller: Tpm2bNonce,
            encrypted_salt: Tpm2bEncryptedSecret,
            session_type: TpmSe,
            symmetric: TpmtSymDef,
            auth_hash: TpmAlgId,
        }
        response_handles { session_handle }
        response { nonce_tpm: Tpm2bNonce }
    }

    /// Part 3 §12.2 TPM2_Create.
    Create / CreateResponse = CREATE, "TPM2_Create" {
        handles { parent_handle: auth }
        params {
            in_sensitive: Tpm2bSensitiveCreate,
            in_public: Tpm2bPublic,
            outside_info: Tpm2bData,
            creation_pcr: TpmlPcrSelection,
        }
        response_handles {}
        response {
            out_private: Tpm2bPrivate,
            out_public: Tpm2bPublic,
            creation_data: Tpm2bCreationData,
            creation_hash: Tpm2bDigest,
            creation_ticket: TpmtTkCreation,
        }
    }

    /// Part 3 §12.3 TPM2_Load.
    Load / LoadResponse = LOAD, "TPM2_Load" {
        handles { parent_handle: auth }
        params { in_private: Tpm2bPrivate, in_public: Tpm2bPublic }
        response_handles { object_handle }
        response { name: Tpm2bName }
    }

    /// Part 3 §12.4 TPM2_LoadExternal.
    LoadExternal / LoadExternalResponse = LOAD_EXTERNAL, "TPM2_LoadExternal" {
        handles {}
        params { in_private: Tpm2bSensitive, in_public: Tpm2bPublic, hierarchy: TpmHandle }
        response_handles { object_handle }
        response { name: Tpm2bName }
    }

    /// Part 3 §12.5 TPM2_ReadPublic.
    ReadPublic / ReadPublicResponse = READ_PUBLIC, "TPM2_ReadPublic" {
        handles { object_handle: noauth }
        params {}
        response_handles {}
        response { out_public: Tpm2bPublic, name: Tpm2bName, qualified_name: Tpm2bName }
    }

    /// Part 3 §12.7 TPM2_Unseal.
    Unseal / UnsealResponse = UNSEAL, "TPM2_Unseal" {
        handles { item_handle: auth }
        params {}
        response_handles {}
        response { out_data: Tpm2bSensitiveData }
    }

    /// Part 3 §12.8 TPM2_ObjectChangeAuth.
    ObjectChangeAuth / ObjectChangeAuthResponse = OBJECT_CHANGE_AUTH, "TPM2_ObjectChangeAuth" {
        handles { object_handle: auth, parent_handle: noauth }
        params { new_auth: Tpm2bAuth }
        response_handles {}
        response { out_private: Tpm2bPrivate }
    }

    /// Part 3 §12.9 TPM2_CreateLoaded.
    CreateLoaded / CreateLoadedResponse = CREATE_LOADED, "TPM2_CreateLoaded" {
        handles { parent_handle: auth }
        params { in_sensitive: Tpm2bSensitiveCreate, in_public: Tpm2bTemplate }
        response_handles { object_handle }
        response { out_private: Tpm2bPrivate, out_public: Tpm2bPublic, name: Tpm2bName }
    }

    /// Part 3 §13.1 TPM2_Duplicate.
    Duplicate / DuplicateResponse = DUPLICATE, "TPM2_Duplicate" {
        handles { object_handle: auth, new_parent_handle: noauth }
        params { encryption_key_in: Tpm2bData, symmetric_alg: TpmtSymDefObject }
        response_handles {}
        response { encryption_key_out: Tpm2bData, duplicate: Tpm2bPrivate, out_sym_seed: Tpm2bEncryptedSecret }
    }

    /// Part 3 §13.3 TPM2_Import.
    Import / ImportResponse = IMPORT, "TPM2_Import" {
        handles { parent_handle: auth }
        params {
            encryption_key: Tpm2bData,
            object_public: Tpm2bPublic,
            duplicate: Tpm2bPrivate,
            in_sym_seed: Tpm2bEncryptedSecret,
            symmetric_alg: TpmtSymDefObject,
        }
        response_handles {}
        response { out_private: Tpm2bPrivate }
    }

    /// Part 3 §14.2 TPM2_RSA_Encrypt.
    RsaEncrypt / RsaEncryptResponse = RSA_ENCRYPT, "TPM2_RSA_Encrypt" {
        handles { key_handle: noauth }
        params { message: Tpm2bPublicKeyRsa, in_scheme: TpmtRsaDecrypt, label: Tpm2bData }
        response_handles {}
        response { out_data: Tpm2bPublicKeyRsa }
    }

    /// Part 3 §14.4 TPM2_ECDH_KeyGen.
    EcdhKeyGen / EcdhKeyGenResponse = ECDH_KEY_GEN, "TPM2_ECDH_KeyGen" {
        handles { key_handle: noauth }
        params {}
        response_handles {}
        response { z_point: Tpm2bEccPoint, pub_point: Tpm2bEccPoint }
    }

    /// Part 3 §14.3 TPM2_RSA_Decrypt.
    RsaDecrypt / RsaDecryptResponse = RSA_DECRYPT, "TPM2_RSA_Decrypt" {
        handles { key_handle: auth }
        params { cipher_text: Tpm2bPublicKeyRsa, in_scheme: TpmtRsaDecrypt, label: Tpm2bData }
        response_handles {}
        response { message: Tpm2bRsaPlaintext }
    }

    /// Part 3 §14.5 TPM2_ECDH_ZGen.
    EcdhZGen / EcdhZGenResponse = ECDH_ZGEN, "TPM2_ECDH_ZGen" {
        handles { key_handle: auth }
        params { in_point: Tpm2bEccPoint }
        response_handles {}
        response { out_point: Tpm2bEccSecretPoint }
    }

    /// Part 3 §19.3 TPM2_EC_Ephemeral.
    EcEphemeral / EcEphemeralResponse = EC_EPHEMERAL, "TPM2_EC_Ephemeral" {
        handles {}
        params { curve_id: TpmEccCurve }
        response_handles {}
        response { q: Tpm2bEccPoint, counter: u16 }
    }

    /// Part 3 §15.4 TPM2_Hash.
    Hash / HashResponse = HASH, "TPM2_Hash" {
        handles {}
        params { data: Tpm2bMaxBuffer, hash_alg: TpmAlgId, hierarchy: TpmHandle }
        response_handles {}
        response { out_hash: Tpm2bDigest, validation: TpmtTkHashcheck }
    }

    /// Part 3 §15.5 TPM2_HMAC.
    Hmac / HmacResponse = HMAC, "TPM2_HMAC" {
        handles { handle: auth }
        params { buffer: Tpm2bMaxBuffer, hash_alg: TpmAlgId }
        response_handles {}
        response { out_hmac: Tpm2bDigest }
    }

    /// Part 3 §16.1 TPM2_GetRandom.
    GetRandom / GetRandomResponse = GET_RANDOM, "TPM2_GetRandom" {
        handles {}
        params { bytes_requested: u16 }
        response_handles {}
        response { random_bytes: Tpm2bDigest }
    }

    /// Part 3 §16.2 TPM2_StirRandom.
    StirRandom / StirRandomResponse = STIR_RANDOM, "TPM2_StirRandom" {
        handles {}
        params { in_data: Tpm2bSensitiveData }
        response_handles {}
        response {}
    }

    /// Part 3 §17.3 TPM2_HashSequenceStart.
    HashSequenceStart / HashSequenceStartResponse = HASH_SEQUENCE_START, "TPM2_HashSequenceStart" {
        handles {}
        params { auth: Tpm2bAuth, hash_alg: TpmAlgId }
        response_handles { sequence_handle }
        response {}
    }

    /// Part 3 §17.4 TPM2_SequenceUpdate.
    SequenceUpdate / SequenceUpdateResponse = SEQUENCE_UPDATE, "TPM2_SequenceUpdate" {
        handles { sequence_handle: auth }
        params { buffer: Tpm2bMaxBuffer }
        response_handles {}
        response {}
    }

    /// Part 3 §17.5 TPM2_SequenceComplete.
    SequenceComplete / SequenceCompleteResponse = SEQUENCE_COMPLETE, "TPM2_SequenceComplete" {
        handles { sequence_handle: auth }
        params { buffer: Tpm2bMaxBuffer, hierarchy: TpmHandle }
        response_handles {}
        response { result: Tpm2bDigest, validation: TpmtTkHashcheck }
    }

    /// Part 3 §20.1 TPM2_VerifySignature.
    VerifySignature / VerifySignatureResponse = VERIFY_SIGNATURE, "TPM2_VerifySignature" {
        handles { key_handle: noauth }
        params { digest: Tpm2bDigest, signature: TpmtSignature }
        response_handles {}
        response { validation: TpmtTkVerified }
    }

    /// Part 3 §20.2 TPM2_Sign.
    Sign / SignResponse = SIGN, "TPM2_Sign" {
        handles { key_handle: auth }
        params { digest: Tpm2bDigest, in_scheme: TpmtSigScheme, validation: TpmtTkHashcheck }
        response_handles {}
        response { signature: TpmtSignature }
    }

    /// Part 3 §22.2 TPM2_PCR_Extend.
    PcrExtend / PcrExtendResponse = PCR_EXTEND, "TPM2_PCR_Extend" {
        handles { pcr_handle: auth }
        params { digests: TpmlDigestValues }
        response_handles {}
        response {}
    }

    /// Part 3 §22.4 TPM2_PCR_Read.
    PcrRead / PcrReadResponse = PCR_READ, "TPM2_PCR_Read" {
        handles {}
        params { pcr_selection_in: TpmlPcrSelection }
        response_handles {}
        response { pcr_update_counter: u32, pcr_selection_out: TpmlPcrSelection, pcr_values: TpmlDigest }
    }

    /// Part 3 §22.8 TPM2_PCR_Reset.
    PcrReset / PcrResetResponse = PCR_RESET, "TPM2_PCR_Reset" {
        handles { pcr_handle: auth }
        params {}
        response_handles {}
        response {}
    }

    /// Part 3 §23.4 TPM2_PolicySecret.
    PolicySecret / PolicySecretResponse = POLICY_SECRET, "TPM2_PolicySecret" {
        handles { auth_handle: auth, policy_session: noauth }
        params { nonce_tpm: Tpm2bNonce, cp_hash_a: Tpm2bDigest, policy_ref: Tpm2bNonce, expiration: u32 }
        response_handles {}
        response { timeout: Tpm2bTimeout, policy_ticket: TpmtTkAuth }
    }

    /// Part 3 §23.6 TPM2_PolicyOR.
    PolicyOr / PolicyOrResponse = POLICY_OR, "TPM2_PolicyOR" {
        handles { policy_session: noauth }
        params { p_hash_list: TpmlDigest }
        response_handles {}
        response {}
    }

    /// Part 3 §23.7 TPM2_PolicyPCR.
    PolicyPcr / PolicyPcrResponse = POLICY_PCR, "TPM2_PolicyPCR" {
        handles { policy_session: noauth }
        params { pcr_digest: Tpm2bDigest, pcrs: TpmlPcrSelection }
        response_handles {}
        response {}
    }

    /// Part 3 §23.11 TPM2_PolicyCommandCode.
    PolicyCommandCode / PolicyCommandCodeResponse = POLICY_COMMAND_CODE, "TPM2_PolicyCommandCode" {
        handles { policy_session: noauth }
        params { code: TpmCc }
        response_handles {}
        response {}
    }

    /// Part 3 §23.17 TPM2_PolicyAuthValue.
    PolicyAuthValue / PolicyAuthValueResponse = POLICY_AUTH_VALUE, "TPM2_PolicyAuthValue" {
        handles { policy_session: noauth }
        params {}
        response_handles {}
        response {}
    }

    /// Part 3 §23.18 TPM2_PolicyPassword.
    PolicyPassword / PolicyPasswordResponse = POLICY_PASSWORD, "TPM2_PolicyPassword" {
        handles { policy_session: noauth }
        params {}
        response_handles {}
        response {}
    }

    /// Part 3 §23.19 TPM2_PolicyGetDigest.
    PolicyGetDigest / PolicyGetDigestResponse = POLICY_GET_DIGEST, "TPM2_PolicyGetDigest" {
        handles { policy_session: noauth }
        params {}
        response_handles {}
        response { policy_digest: Tpm2bDigest }
    }

    /// Part 3 §23.13 TPM2_PolicyRestart.
    PolicyRestart / PolicyRestartResponse = POLICY_RESTART, "TPM2_PolicyRestart" {
        handles { session_handle: noauth }
        params {}
        response_handles {}
        response {}
    }

    /// Part 3 §24.1 TPM2_CreatePrimary.
    CreatePrimary / CreatePrimaryResponse = CREATE_PRIMARY, "TPM2_CreatePrimary" {
        handles { primary_handle: auth }
        params {
            in_sensitive: Tpm2bSensitiveCreate,
            in_public: Tpm2bPublic,
            outside_info: Tpm2bData,
            creation_pcr: TpmlPcrSelection,
        }
        response_handles { object_handle }
        response {
            out_public: Tpm2bPublic,
            creation_data: Tpm2bCreationData,
            creation_hash: Tpm2bDigest,
            creation_ticket: TpmtTkCreation,
            name: Tpm2bName,
        }
    }

    /// Part 3 §24.6 TPM2_Clear.
    Clear / ClearResponse = CLEAR, "TPM2_Clear" {
        handles { auth_handle: auth }
        params {}
        response_handles {}
        response {}
    }

    /// Part 3 §24.8 TPM2_HierarchyChangeAuth.
    HierarchyChangeAuth / HierarchyChangeAuthResponse = HIERARCHY_CHANGE_AUTH, "TPM2_HierarchyChangeAuth" {
        handles { auth_handle: auth }
        params { new_auth: Tpm2bAuth }
        response_handles {}
        response {}
    }

    /// Part 3 §25.2 TPM2_DictionaryAttackLockReset.
    DictionaryAttackLockReset / DictionaryAttackLockResetResponse = DICTIONARY_ATTACK_LOCK_RESET, "TPM2_DictionaryAttackLockReset" {
        handles { lock_handle: auth }
        params {}
        response_handles {}
        response {}
    }

    /// Part 3 §25.3 TPM2_DictionaryAttackParameters.
    DictionaryAttackParameters / DictionaryAttackParametersResponse = DICTIONARY_ATTACK_PARAMETERS, "TPM2_DictionaryAttackParameters" {
        handles { lock_handle: auth }
        params { new_max_tries: u32, new_recovery_time: u32, lockout_recovery: u32 }
        response_handles {}
        response {}
    }

    /// Part 3 §28.2 TPM2_ContextSave.
    ContextSave / ContextSaveResponse = CONTEXT_SAVE, "TPM2_ContextSave" {
        handles { save_handle: noauth }
        params {}
        response_handles {}
        response { context: TpmsContext }
    }

    /// Part 3 §28.3 TPM2_ContextLoad.
    ContextLoad / ContextLoadResponse = CONTEXT_LOAD, "TPM2_ContextLoad" {
        handles {}
        params { context: TpmsContext }
        response_handles { loaded_handle }
        response {}
    }

    /// Part 3 §28.4 TPM2_FlushContext. The handle to flush is a parameter.
    FlushContext / FlushContextResponse = FLUSH_CONTEXT, "TPM2_FlushContext" {
        handles {}
        params { flush_handle: TpmHandle }
        response_handles {}
        response {}
    }

    /// Part 3 §28.5 TPM2_EvictControl.
    EvictControl / EvictControlResponse = EVICT_CONTROL, "TPM2_EvictControl" {
        handles { auth: auth, object_handle: noauth }
        params { persistent_handle: TpmHandle }
        response_handles {}
        response {}
    }

    /// Part 3 §30.2 TPM2_GetCapability.
    GetCapability / GetCapabilityResponse = GET_CAPABILITY, "TPM2_GetCapability" {
        handles {}
        params { capability: TpmCap, property: u32, property_count: u32 }
        response_handles {}
        response { more_data: bool, capability_data: TpmsCapabilityData }
    }

    /// Part 3 §30.3 TPM2_TestParms.
    TestParms / TestParmsResponse = TEST_PARMS, "TPM2_TestParms" {
        handles {}
        params { parameters: TpmtPublicParms }
        response_handles {}
        response {}
    }
}
