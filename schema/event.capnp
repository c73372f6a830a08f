# Trail event schema. The envelope is what the ledger stores and hashes; the payload is what
# it seals. Append fields, never renumber or change a field's type: stored bytes are hashed
# and must decode forever. docs/FORMAT.md specifies how these bytes are hashed and sealed.
@0xf5cb28eecc793d75;

$import "/capnp/c++.capnp".namespace("trail::schema");

enum Kind {
  # What happened. Stored in clear in the envelope so that indexes and verifiers can route an
  # event without decrypting it; the kind itself carries no personal data.
  formSubmitted @0;      # a raw XForm / JSON submission exactly as received
  caseCreated @1;
  caseUpdated @2;
  caseClosed @3;
  caseReopened @4;
  caseIndexed @5;        # parent/child index set or changed
  caseReassigned @6;     # owner changed
  attachmentAdded @7;
  recordRead @8;         # access audit: somebody read personal data
  breakGlassGranted @9;
  userCreated @10;
  userDisabled @11;
  roleChanged @12;
  passwordChanged @13;
  loginSucceeded @14;
  loginFailed @15;
  sessionEnded @16;
  exportMade @17;
  policyChanged @18;
  keyShredded @19;
  projectCreated @20;    # a project space was opened (in `_system`)
  orgUnitAdded @21;      # an organisation unit joined a project's tree (in `_system`)
  scopesChanged @22;     # a user's capture/search/analytics units in a project (in `_system`)
  roleDefined @23;       # a project's custom role and its authorities (in `_system`)
  caseTypeChanged @24;   # a case type's break-the-glass level (in `_system`)
  totpEnrolled @25;      # a two-factor secret issued, not yet confirmed (in `_system`)
  totpConfirmed @26;     # two-factor log-in switched on, recovery codes issued (in `_system`)
  accountLocked @27;     # log-in throttling engaged for an account or an address (in `_system`)
}

enum Channel {
  # How the event reached Trail.
  mobileForm @0;
  web @1;
  api @2;
  import @3;
  system @4;
}

enum Cipher {
  aes256gcm @0;          # libsodium crypto_aead_aes256gcm, 12-byte nonce (AES-NI only)
  xchacha20poly1305 @1;  # libsodium crypto_aead_xchacha20poly1305_ietf, 24-byte nonce
}

struct Envelope {
  # One event as stored in the `events` sub-database. hash = SHA-256(0x00 || these bytes).
  project @0 :Text;          # project space (tenant) id; "_system" for the system chain
  seq @1 :UInt64;            # 1, 2, 3 ... per project, no gaps
  prevHash @2 :Data;         # 32 bytes: hash of event seq-1; all zero for seq 1
  eventId @3 :Data;          # 16 bytes chosen by the client: the idempotency key
  kind @4 :Kind;
  actor @5 :Text;            # user id (never a personal name)
  deviceId @6 :Text;
  channel @7 :Channel;
  via @8 :Data;              # 16 bytes: event id of the submission that caused this, or empty
  clientTimeUs @9 :Int64;    # device clock as reported, microseconds since the Unix epoch (UTC)
  serverTimeUs @10 :Int64;   # assigned at append; never decreases along a chain
  subject @11 :Data;         # 16 bytes: case or record id (random, never personal data), or empty
  keyId @12 :UInt32;         # data key that sealed the payload
  cipher @13 :Cipher;
  nonce @14 :Data;
  ciphertext @15 :Data;      # the sealed Payload, tag included
}

struct Field {
  name @0 :Text;
  value @1 :Text;
}

struct CaseIndex {
  name @0 :Text;             # index name, e.g. "parent"
  caseType @1 :Text;
  caseId @2 :Data;           # 16 bytes; empty removes the index
  relationship @3 :Text;     # "child" or "extension"
}

struct CaseChange {
  # caseCreated, caseUpdated, caseClosed, caseReopened, caseIndexed, caseReassigned.
  caseType @0 :Text;
  caseName @1 :Text;
  owner @2 :Text;
  fields @3 :List(Field);    # sorted by name, names unique
  indices @4 :List(CaseIndex);
}

struct FormSubmission {
  xmlns @0 :Text;
  contentType @1 :Text;
  body @2 :Data;             # the submission exactly as received
}

struct Attachment {
  name @0 :Text;
  contentType @1 :Text;
  body @2 :Data;
}

struct RecordRead {
  what @0 :Text;             # case, history, search, export, sync ...
  subjects @1 :List(Data);   # ids of the records read
  reason @2 :Text;
  address @3 :Text;          # the reader's network address, when read over the network
  endpoint @4 :Text;         # how: "GET /v1/projects/{p}/cases/{id}", "trailctl case show" ...
  outsideCapture @5 :Bool;   # audited case types: the reader's capture scope does not hold it
  grant @6 :Data;            # 16 bytes: the break-the-glass grant the read relied on, or empty
}

struct AccountChange {
  # userCreated, userDisabled, roleChanged, passwordChanged, loginSucceeded, loginFailed,
  # sessionEnded, breakGlassGranted, policyChanged, exportMade, keyShredded.
  user @0 :Text;
  detail @1 :List(Field);
}

struct Payload {
  # What the ciphertext holds once opened.
  union {
    caseChange @0 :CaseChange;
    form @1 :FormSubmission;
    attachment @2 :Attachment;
    recordRead @3 :RecordRead;
    account @4 :AccountChange;
  }
}
