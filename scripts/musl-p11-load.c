/* Loads the musl build of libtpmkey.so the way a musl program (Alpine's ssh) does:
 * dlopen, C_GetFunctionList, C_Initialize, C_GetSlotList, C_GetTokenInfo and, when a
 * user PIN is given, a TPM signature through the module (C_OpenSession, C_Login,
 * C_FindObjects for a private key, C_SignInit/C_Sign with CKM_ECDSA), then
 * C_Finalize. Built with musl-gcc by scripts/build-musl.sh.
 *
 *   musl-p11-load MODULE [USER_PIN [--hold FIFO]]
 *
 * With --hold it stays, logged in, like an ssh-agent holding the module: after the
 * first signature it prints "holding", then reads lines from FIFO: "sign" signs
 * again and prints "sign N ok" (or "sign N failed: CKR 0x..."), "quit" ends it
 * (C_CloseSession, C_Finalize). The VM test drives it while other processes use
 * the TPM.
 *
 * The PKCS#11 types are declared here, only as far as used (Cryptoki 2.40 ABI on
 * LP64 Linux: CK_ULONG is unsigned long, structures are not packed). */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef struct { unsigned char major, minor; } CK_VERSION;
typedef struct { CK_ULONG type; void *value; CK_ULONG len; } CK_ATTRIBUTE;
typedef struct { CK_ULONG mechanism; void *param; CK_ULONG param_len; } CK_MECHANISM;
typedef void (*unused)(void);

/* CK_FUNCTION_LIST: the version, then the functions in the order of pkcs11f.h;
 * those not called here are placeholders of the same size. */
struct function_list {
    CK_VERSION version;
    CK_RV (*Initialize)(void *);
    CK_RV (*Finalize)(void *);
    unused GetInfo;
    CK_RV (*GetFunctionList)(struct function_list **);
    CK_RV (*GetSlotList)(unsigned char, CK_ULONG *, CK_ULONG *);
    unused GetSlotInfo;
    CK_RV (*GetTokenInfo)(CK_ULONG, void *);
    unused GetMechanismList, GetMechanismInfo, InitToken, InitPIN, SetPIN;
    CK_RV (*OpenSession)(CK_ULONG, CK_ULONG, void *, void *, CK_ULONG *);
    CK_RV (*CloseSession)(CK_ULONG);
    unused CloseAllSessions, GetSessionInfo, GetOperationState, SetOperationState;
    CK_RV (*Login)(CK_ULONG, CK_ULONG, unsigned char *, CK_ULONG);
    unused Logout, CreateObject, CopyObject, DestroyObject, GetObjectSize,
        GetAttributeValue, SetAttributeValue;
    CK_RV (*FindObjectsInit)(CK_ULONG, CK_ATTRIBUTE *, CK_ULONG);
    CK_RV (*FindObjects)(CK_ULONG, CK_ULONG *, CK_ULONG, CK_ULONG *);
    CK_RV (*FindObjectsFinal)(CK_ULONG);
    unused EncryptInit, Encrypt, EncryptUpdate, EncryptFinal, DecryptInit, Decrypt,
        DecryptUpdate, DecryptFinal, DigestInit, Digest, DigestUpdate, DigestKey,
        DigestFinal;
    CK_RV (*SignInit)(CK_ULONG, CK_MECHANISM *, CK_ULONG);
    CK_RV (*Sign)(CK_ULONG, unsigned char *, CK_ULONG, unsigned char *, CK_ULONG *);
};
#define CKF_RW_SESSION 2UL
#define CKF_SERIAL_SESSION 4UL
#define CKU_USER 1UL
#define CKA_CLASS 0UL
#define CKO_PRIVATE_KEY 3UL
#define CKM_ECDSA 0x1041UL

#define CHECK(what, call)                                                  \
    do {                                                                   \
        CK_RV rv_ = (call);                                                \
        if (rv_ != 0) {                                                    \
            fprintf(stderr, "musl-p11-load: %s: CKR 0x%lx\n", what, rv_); \
            return 1;                                                      \
        }                                                                  \
    } while (0)

/* One ECDSA signature of a fixed digest: C_SignInit, C_Sign. */
static CK_RV sign_once(struct function_list *p11, CK_ULONG s, CK_ULONG key, CK_ULONG *sig_len) {
    unsigned char digest[32], sig[512];
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    memset(digest, 0x5a, sizeof digest);
    *sig_len = sizeof sig;
    CK_RV rv = p11->SignInit(s, &mech, key);
    if (rv != 0) return rv;
    return p11->Sign(s, digest, (CK_ULONG)sizeof digest, sig, sig_len);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE [USER_PIN [--hold FIFO]]\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "musl-p11-load: dlopen: %s\n", dlerror());
        return 1;
    }
    CK_RV (*get_list)(struct function_list **) =
        (CK_RV (*)(struct function_list **))dlsym(lib, "C_GetFunctionList");
    if (!get_list) {
        fprintf(stderr, "musl-p11-load: no C_GetFunctionList: %s\n", dlerror());
        return 1;
    }
    struct function_list *p11 = 0;
    CHECK("C_GetFunctionList", get_list(&p11));
    if (p11->GetFunctionList != get_list) {
        fprintf(stderr, "musl-p11-load: the function list is not laid out as in pkcs11f.h\n");
        return 1;
    }
    printf("Cryptoki %u.%u\n", p11->version.major, p11->version.minor);
    CHECK("C_Initialize", p11->Initialize(NULL));
    CK_ULONG slots[16], n = 16;
    CHECK("C_GetSlotList", p11->GetSlotList((unsigned char)1, slots, &n));
    printf("slots with a token: %lu\n", n);
    for (CK_ULONG i = 0; i < n; i++) {
        unsigned char info[512];  /* CK_TOKEN_INFO (208 bytes); label first */
        CHECK("C_GetTokenInfo", p11->GetTokenInfo(slots[i], info));
        printf("slot %lu: token \"%.32s\"\n", slots[i], (char *)info);
    }
    if (argc > 2 && n > 0) {
        CK_ULONG s, key, found = 0;
        CHECK("C_OpenSession", p11->OpenSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
        CHECK("C_Login", p11->Login(s, CKU_USER, (unsigned char *)argv[2], (CK_ULONG)strlen(argv[2])));
        CK_ULONG class = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE tmpl = {CKA_CLASS, &class, sizeof class};
        CHECK("C_FindObjectsInit", p11->FindObjectsInit(s, &tmpl, 1UL));
        CHECK("C_FindObjects", p11->FindObjects(s, &key, 1UL, &found));
        CHECK("C_FindObjectsFinal", p11->FindObjectsFinal(s));
        if (found != 1) {
            fprintf(stderr, "musl-p11-load: no private key on the token\n");
            return 1;
        }
        CK_ULONG sig_len = 0;
        CHECK("C_SignInit/C_Sign", sign_once(p11, s, key, &sig_len));
        printf("ECDSA signature from the TPM through the module: %lu bytes\n", sig_len);
        if (argc > 4 && strcmp(argv[3], "--hold") == 0) {
            int fd = open(argv[4], O_RDWR); /* O_RDWR: no EOF when a writer closes */
            FILE *in = fd < 0 ? NULL : fdopen(fd, "r");
            if (!in) {
                perror("musl-p11-load: open the FIFO");
                return 1;
            }
            printf("holding\n");
            fflush(stdout);
            char line[64];
            unsigned n = 0;
            while (fgets(line, sizeof line, in)) {
                if (strncmp(line, "quit", 4) == 0) break;
                if (strncmp(line, "sign", 4) != 0) continue;
                CK_RV rv = sign_once(p11, s, key, &sig_len);
                n++;
                if (rv == 0)
                    printf("sign %u ok\n", n);
                else
                    printf("sign %u failed: CKR 0x%lx\n", n, rv);
                fflush(stdout);
            }
            fclose(in);
        }
        CHECK("C_CloseSession", p11->CloseSession(s));
    }
    CHECK("C_Finalize", p11->Finalize(NULL));
    printf("musl-p11-load: ok\n");
    return 0;
}
