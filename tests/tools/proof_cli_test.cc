// trailctl keys show, proof inclusion|consistency, checkpoint, export-chain and verify-bundle,
// driven as processes as an auditor would: the key parses, proofs verify against the roots of
// signed checkpoints, an exported bundle verifies, and every tampered bundle fails by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/signed_note.h"
#include "tests/support/ledger_fixture.h"
#include "tests/tools/audit_cli_fixture.h"

namespace trail::testing::audit_cli {
namespace {

class ProofCli : public AuditCli {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(AuditCli::SetUp());
    ASSERT_NO_FATAL_FAILURE(append(1, 5));
    note5_ = checkpoint_now();
    ASSERT_NO_FATAL_FAILURE(append(6, 4));
    note9_ = checkpoint_now();
  }

  ledger::note::Verifier verifier() {
    auto parsed = ledger::note::Verifier::parse(vkey());
    EXPECT_TRUE(parsed.is_ok()) << parsed.status().to_string();
    return *parsed;
  }

  // The checkpoint of `note`, its signature checked with the key `keys show` printed.
  ledger::Checkpoint opened(const std::string& note) {
    const ledger::note::Verifier key = verifier();
    auto checkpoint = ledger::open_checkpoint(note, {&key, 1});
    EXPECT_TRUE(checkpoint.is_ok()) << checkpoint.status().to_string() << "\n" << note;
    return checkpoint.is_ok() ? *checkpoint : ledger::Checkpoint{};
  }

  json::object proof(std::vector<std::string> args) {
    args.insert(args.begin(), {"proof"});
    args.insert(args.end(), {"--data", data(), "--project", kProject});
    const ProcessResult r = ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(split_lines(r.out).size(), 1U) << r.out;
    return r.exit_code == 0 ? json::parse(r.out).as_object() : json::object{};
  }

  // The bundle, exported to a file and read back as lines.
  std::vector<std::string> export_bundle() {
    const ProcessResult exported = ctl({"export-chain", "--data", data(), "--project", kProject,
                                        "--out", path("bundle.jsonl").string()});
    EXPECT_EQ(exported.exit_code, 0) << exported.err;
    EXPECT_EQ(exported.out, "exported 9 events and 2 checkpoints of clinic-a to " +
                                path("bundle.jsonl").string() + "\n");
    return split_lines(slurp(path("bundle.jsonl")));
  }

  ProcessResult verify_bundle(const std::vector<std::string>& lines, const std::string& key) {
    std::string text;
    for (const auto& line : lines) text += line + "\n";
    write_file(path("tampered.jsonl"), text);
    return ctl({"verify-bundle", path("tampered.jsonl").string(), "--pubkey", key});
  }

  // Index in `lines` of the event line of `seq` (or checkpoint line of size `seq`).
  static std::size_t line_of(const std::vector<std::string>& lines, const std::string& type,
                             std::uint64_t seq) {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const json::object o = json::parse(lines[i]).as_object();
      if (o.at("type").as_string() != type) continue;
      const char* field = type == "event" ? "seq" : "size";
      if (o.at(field).to_number<std::uint64_t>() == seq) return i;
    }
    ADD_FAILURE() << "no " << type << " " << seq;
    return 0;
  }

  std::string note5_;
  std::string note9_;
};

// An export reads the checkpoints a page at a time: here more than one page of them, one per
// event, all in the bundle and all verified.
TEST_F(AuditCli, ExportWritesEveryCheckpointAcrossPages) {
  constexpr std::size_t kEvents = 300;  // More than one page (256) of checkpoints.
  {
    auto keyring = ledger::KeyRing::load(keys());
    ASSERT_TRUE(keyring.is_ok()) << keyring.status().to_string();
    ledger::LedgerOptions options;
    options.data_dir = data();
    options.keys = *keyring;
    options.checkpoint_every_events = 1;
    auto opened = ledger::Ledger::open(options);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    for (std::size_t i = 0; i < kEvents; ++i) {
      auto appended = (*opened)->append(kProject, make_drafts(1, 40)).get();
      ASSERT_TRUE(appended.is_ok()) << appended.status().to_string();
    }
  }
  const std::string bundle = path("many.jsonl").string();
  const ProcessResult exported =
      ctl({"export-chain", "--data", data(), "--project", kProject, "--out", bundle});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_EQ(exported.out, "exported 300 events and 300 checkpoints of clinic-a to " + bundle + "\n");
  const auto lines = split_lines(slurp(bundle));
  ASSERT_EQ(lines.size(), 1U + 2U * kEvents);
  for (std::size_t seq = 1; seq <= kEvents; ++seq) {  // Each event, then the checkpoint at its size.
    const json::object checkpoint = json::parse(lines[2U * seq]).as_object();
    EXPECT_EQ(checkpoint.at("type").as_string(), "checkpoint");
    EXPECT_EQ(checkpoint.at("size").to_number<std::size_t>(), seq);
  }
  const ProcessResult verified = ctl({"verify-bundle", bundle, "--pubkey", vkey()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_TRUE(verified.out.starts_with("intact: 300 events of clinic-a, 300 checkpoints signed by "))
      << verified.out;
}

TEST_F(ProofCli, KeysShowPrintsAVerifierKeyThatOpensTheCheckpoints) {
  const std::string key = vkey();
  auto parsed = ledger::note::Verifier::parse(key);
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string() << ": " << key;
  EXPECT_EQ(parsed->name, kKeyName);
  EXPECT_EQ(parsed->to_string(), key);
  EXPECT_EQ(opened(note5_).size, 5U);
  EXPECT_EQ(opened(note9_).size, 9U);
  EXPECT_EQ(opened(note9_).origin, std::string(kKeyName) + "/" + kProject);
}

TEST_F(ProofCli, CheckpointPrintsTheStoredNoteAsSigned) {
  ProcessResult at5 = ctl({"checkpoint", "--data", data(), "--project", kProject, "--size", "5"});
  EXPECT_EQ(at5.exit_code, 0) << at5.err;
  EXPECT_EQ(at5.out, note5_);
  ProcessResult latest = ctl({"checkpoint", "--data", data(), "--project", kProject});
  EXPECT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_EQ(latest.out, note9_);
  // --now at a head the latest covers issues none: the same note again.
  EXPECT_EQ(checkpoint_now(), note9_);
  ProcessResult none = ctl({"checkpoint", "--data", data(), "--project", kProject, "--size", "4"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no checkpoint of clinic-a at size 4"), std::string::npos) << none.err;
}

TEST_F(ProofCli, InclusionProofsVerifyAgainstCheckpointRoots) {
  const ledger::Checkpoint c5 = opened(note5_);
  const ledger::Checkpoint c9 = opened(note9_);
  for (std::uint64_t seq = 1; seq <= 9; ++seq) {
    SCOPED_TRACE("seq " + std::to_string(seq));
    const json::object whole = proof({"inclusion", "--seq", std::to_string(seq)});
    EXPECT_EQ(whole.at("leaf_index").to_number<std::uint64_t>(), seq - 1);
    EXPECT_EQ(whole.at("tree_size").to_number<std::uint64_t>(), 9U);
    const auto hashes = digests_of_base64(whole.at("hashes").as_array());
    EXPECT_TRUE(ledger::merkle::verify_inclusion(seq - 1, 9, hashes_[seq], hashes, c9.root).is_ok());
    // The same proof does not place another event there.
    EXPECT_FALSE(ledger::merkle::verify_inclusion(seq - 1, 9, hashes_[seq % 9 + 1], hashes, c9.root)
                     .is_ok());
    if (seq > 5) continue;
    const json::object at5 = proof({"inclusion", "--seq", std::to_string(seq), "--size", "5"});
    EXPECT_EQ(at5.at("tree_size").to_number<std::uint64_t>(), 5U);
    EXPECT_TRUE(ledger::merkle::verify_inclusion(seq - 1, 5, hashes_[seq],
                                                 digests_of_base64(at5.at("hashes").as_array()),
                                                 c5.root)
                    .is_ok());
  }
  // Out of range: usage errors naming the limit.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--seq", "0"}, {"--seq", "10"}, {"--seq", "6", "--size", "5"}, {"--seq", "1", "--size", "10"}}) {
    std::vector<std::string> argv{"proof", "inclusion", "--data", data(), "--project", kProject};
    argv.insert(argv.end(), args.begin(), args.end());
    const ProcessResult r = ctl(argv);
    EXPECT_EQ(r.exit_code, 2) << args[1] << r.out;
    EXPECT_TRUE(r.out.empty());
  }
}

TEST_F(ProofCli, ConsistencyProofsVerifyBetweenCheckpointRoots) {
  const ledger::Checkpoint c5 = opened(note5_);
  const ledger::Checkpoint c9 = opened(note9_);
  const json::object explicit_to = proof({"consistency", "--from", "5", "--to", "9"});
  const json::object default_to = proof({"consistency", "--from", "5"});
  EXPECT_EQ(explicit_to, default_to);
  EXPECT_EQ(explicit_to.at("from").to_number<std::uint64_t>(), 5U);
  EXPECT_EQ(explicit_to.at("to").to_number<std::uint64_t>(), 9U);
  const auto hashes = digests_of_base64(explicit_to.at("hashes").as_array());
  EXPECT_TRUE(ledger::merkle::verify_consistency(5, 9, c5.root, c9.root, hashes).is_ok());
  EXPECT_FALSE(ledger::merkle::verify_consistency(5, 9, c9.root, c9.root, hashes).is_ok());
  // Equal sizes: an empty proof.
  const json::object same = proof({"consistency", "--from", "9"});
  EXPECT_TRUE(same.at("hashes").as_array().empty());
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--from", "0"}, {"--from", "6", "--to", "5"}, {"--from", "1", "--to", "10"}}) {
    std::vector<std::string> argv{"proof", "consistency", "--data", data(), "--project", kProject};
    argv.insert(argv.end(), args.begin(), args.end());
    EXPECT_EQ(ctl(argv).exit_code, 2) << args[1];
  }
}

TEST_F(ProofCli, ExportedBundleVerifiesWithTheKeyAndAKeyFile) {
  const std::vector<std::string> lines = export_bundle();
  ASSERT_EQ(lines.size(), 1U + 9U + 2U);
  const json::object header = json::parse(lines[0]).as_object();
  EXPECT_EQ(header.at("type").as_string(), "trail-chain-bundle");
  EXPECT_EQ(header.at("version").as_int64(), 1);
  EXPECT_EQ(header.at("project").as_string(), kProject);
  EXPECT_EQ(header.at("events").to_number<std::uint64_t>(), 9U);
  EXPECT_EQ(header.at("checkpoints").to_number<std::uint64_t>(), 2U);
  // Each checkpoint follows the event that completes it; envelopes hash to the receipts.
  EXPECT_EQ(line_of(lines, "checkpoint", 5), line_of(lines, "event", 5) + 1);
  EXPECT_EQ(line_of(lines, "checkpoint", 9), lines.size() - 1);
  EXPECT_EQ(json::parse(lines[line_of(lines, "checkpoint", 5)]).at("note").as_string(), note5_);
  for (std::uint64_t seq = 1; seq <= 9; ++seq) {
    auto bytes = from_base64(json::parse(lines[line_of(lines, "event", seq)]).at("envelope").as_string());
    ASSERT_TRUE(bytes.has_value());
    EXPECT_EQ(ledger::merkle::leaf_hash(ByteView{bytes->data(), bytes->size()}), hashes_[seq]);
  }

  const ProcessResult ok = ctl({"verify-bundle", path("bundle.jsonl").string(), "--pubkey", vkey()});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_TRUE(ok.out.starts_with("intact: 9 events of clinic-a, 2 checkpoints signed by " +
                                 std::string(kKeyName) + "+"))
      << ok.out;
  write_file(path("key.pub"), vkey() + "\n");
  const ProcessResult from_file = ctl({"verify-bundle", path("bundle.jsonl").string(), "--pubkey",
                                       "@" + path("key.pub").string()});
  EXPECT_EQ(from_file.exit_code, 0) << from_file.out << from_file.err;
  EXPECT_EQ(from_file.out, ok.out);

  // Events after the last checkpoint are named as covered by none.
  ASSERT_NO_FATAL_FAILURE(append(10, 2));
  const ProcessResult more = ctl({"export-chain", "--data", data(), "--project", kProject, "--out",
                                  path("more.jsonl").string()});
  ASSERT_EQ(more.exit_code, 0) << more.err;
  const ProcessResult partly = ctl({"verify-bundle", path("more.jsonl").string(), "--pubkey", vkey()});
  EXPECT_EQ(partly.exit_code, 0) << partly.out << partly.err;
  EXPECT_NE(partly.out.find("events 10..11 are covered by no checkpoint"), std::string::npos)
      << partly.out;
}

TEST_F(ProofCli, TamperedBundlesFailNamingTheProblem) {
  const std::vector<std::string> lines = export_bundle();
  const std::string key = vkey();
  struct Case {
    std::string name;
    std::vector<std::string> lines;
    std::string key;
    std::string expected;  // Part of the first output line.
  };
  std::vector<Case> cases;

  {  // One flipped envelope byte (in the actor text of event 3).
    auto t = lines;
    const std::size_t i = line_of(t, "event", 3);
    json::object o = json::parse(t[i]).as_object();
    auto bytes = *from_base64(o.at("envelope").as_string());
    const std::string text(bytes.begin(), bytes.end());
    const std::size_t at = text.find("chw-017");
    ASSERT_NE(at, std::string::npos);
    bytes[at] ^= 0x01U;
    o["envelope"] = to_base64(ByteView{bytes.data(), bytes.size()});
    t[i] = json::serialize(o);
    cases.push_back({"flipped envelope byte", t, key,
                     "seq=4: prevHash does not match the hash of seq 3"});
  }
  {  // A dropped event.
    auto t = lines;
    t.erase(t.begin() + static_cast<std::ptrdiff_t>(line_of(t, "event", 7)));
    cases.push_back({"dropped event", t, key, "seq=7: event is missing or out of order (seq 8 comes next in the bundle)"});
  }
  {  // The last event dropped with its checkpoint: the header's counts no longer hold.
    auto t = lines;
    t.resize(t.size() - 2);
    cases.push_back({"dropped tail", t, key, "the bundle holds 8 events and 1 checkpoints but its header announces 9 and 2"});
  }
  {  // A reordered pair.
    auto t = lines;
    std::swap(t[line_of(t, "event", 2)], t[line_of(t, "event", 3)]);
    cases.push_back({"reordered pair", t, key, "seq=2: event is missing or out of order (seq 3 comes next in the bundle)"});
  }
  {  // A reordered pair renumbered in the JSON: the envelope still says its own seq.
    auto t = lines;
    const std::size_t a = line_of(t, "event", 2);
    const std::size_t b = line_of(t, "event", 3);
    json::object first = json::parse(t[b]).as_object();
    json::object second = json::parse(t[a]).as_object();
    first["seq"] = 2;
    second["seq"] = 3;
    t[a] = json::serialize(first);
    t[b] = json::serialize(second);
    cases.push_back({"renumbered pair", t, key, "seq=2: envelope says seq 3"});
  }
  {  // A checkpoint with a flipped signature byte.
    auto t = lines;
    const std::size_t i = line_of(t, "checkpoint", 5);
    json::object o = json::parse(t[i]).as_object();
    o["note"] = with_flipped_signature(std::string(o.at("note").as_string()));
    t[i] = json::serialize(o);
    cases.push_back({"flipped signature", t, key,
                     "checkpoint at size 5: its signature does not verify with the checkpoint key"});
  }
  {  // A checkpoint signed by another key (same name, right root).
    auto t = lines;
    const std::size_t i = line_of(t, "checkpoint", 9);
    json::object o = json::parse(t[i]).as_object();
    o["note"] = resigned_by_other_key(std::string(o.at("note").as_string()));
    t[i] = json::serialize(o);
    cases.push_back({"other key", t, key,
                     "checkpoint at size 9: it is not signed by the checkpoint key " + key_label(key)});
  }
  {  // An intact bundle checked with another key.
    cases.push_back({"wrong --pubkey", lines, other_keys().signer().verifier_key(),
                     "checkpoint at size 5: it is not signed by the checkpoint key"});
  }
  {  // A checkpoint whose body was changed (a root of another size) and re-signed elsewhere
     // cannot be made; a checkpoint moved to another place is caught by position.
    auto t = lines;
    const std::size_t i = line_of(t, "checkpoint", 5);
    const std::string moved = t[i];
    t.erase(t.begin() + static_cast<std::ptrdiff_t>(i));
    t.insert(t.begin() + static_cast<std::ptrdiff_t>(line_of(t, "event", 6)) + 1, moved);
    cases.push_back({"moved checkpoint", t, key, "checkpoint at size 5: it follows event 6"});
  }

  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const ProcessResult r = verify_bundle(c.lines, c.key);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_TRUE(r.out.starts_with("TAMPERED project=clinic-a")) << r.out;
    EXPECT_NE(r.out.find(c.expected), std::string::npos) << r.out;
  }
}

TEST_F(ProofCli, VerifyWithPubkeyChecksTreesOnACopyWithoutKeys) {
  const auto copy = copy_data("copy");
  const ProcessResult r = ctl({"verify", "--data", copy.string(), "--pubkey", vkey()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // 9 events of clinic-a and init's 2 of `_system`: below 16 leaves no node is stored (levels
  // 0..3 are recomputed from the events), so only the checkpoints are compared.
  EXPECT_NE(r.out.find("intact: 11 events in 2 projects"), std::string::npos) << r.out;
  // At least the two of clinic-a (the checkpoint timer may have issued one of `_system`).
  EXPECT_NE(r.out.find("trees: 0 Merkle nodes and "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" checkpoints match the events (checkpoint signatures checked with " +
                       std::string(kKeyName) + "+"),
            std::string::npos)
      << r.out;
  // A malformed key is a usage error.
  EXPECT_EQ(ctl({"verify", "--data", copy.string(), "--pubkey", "not-a-key"}).exit_code, 2);
}

}  // namespace
}  // namespace trail::testing::audit_cli
