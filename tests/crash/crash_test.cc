// Crash safety: a child process appends under load and is SIGKILLed at random moments; after
// each kill the ledger must reopen, verify, and hold every event the child had acknowledged.
// Also: the writer's poison rule after a failed commit, and concurrent appends in-process.
//
// The random kill schedule comes from --gtest_random_seed when given, otherwise from a fresh
// random seed; either way the seed is printed so a failing run can be replayed.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ledger/envelope.h"
#include "ledger/verify.h"
#include "projections/case_projector.h"
#include "tests/support/ledger_fixture.h"
#include "tests/support/views_check.h"

extern char** environ;

namespace trail::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kRounds = 40;
constexpr int kChildThreads = 8;
constexpr const char* kProjectBase = "crash";
constexpr std::array<std::string_view, 2> kChildProjects = {"crash-a", "crash-b"};
// How long a child may take to open the ledger and acknowledge its first append.
constexpr milliseconds kFirstReceiptTimeout{20'000};

// One receipt line of the child: an acknowledged (durably committed) event.
struct Ack {
  std::string project;
  EventId id{};
  std::uint64_t seq = 0;
  Digest hash{};
};

std::optional<Ack> parse_ack(std::string_view line) {
  std::vector<std::string_view> fields;
  while (!line.empty()) {
    const std::size_t space = line.find(' ');
    fields.push_back(line.substr(0, space));
    if (space == std::string_view::npos) break;
    line.remove_prefix(space + 1);
  }
  if (fields.size() != 4) return std::nullopt;
  Ack ack;
  ack.project = std::string(fields[0]);
  if (!from_hex(fields[1], ack.id) || !from_hex(fields[3], ack.hash)) return std::nullopt;
  const auto [end, ec] =
      std::from_chars(fields[2].data(), fields[2].data() + fields[2].size(), ack.seq);
  if (ec != std::errc{} || end != fields[2].data() + fields[2].size() || ack.seq == 0) {
    return std::nullopt;
  }
  return ack;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

// The child process with its stdout on a pipe. Killed and reaped on destruction if still alive.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (read_fd_ >= 0) ::close(read_fd_);
  }

  // Starts `argv[0]` with `argv`; stdout goes to a pipe this object reads. Returns an error
  // text, or empty on success.
  std::string spawn(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("pipe2: ") + std::strerror(errno);
    read_fd_ = fds[0];
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // dup2 clears close-on-exec on the new descriptor, so only stdout survives the exec.
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      pid_ = -1;
      return std::string("posix_spawn: ") + std::strerror(rc);
    }
    return {};
  }

  // Reads the pipe until `deadline`, or until `until_lines` complete lines have arrived, or
  // until end of file. Returns false at end of file.
  bool read_until(Clock::time_point deadline, std::size_t until_lines = SIZE_MAX) {
    while (lines_ < until_lines) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return true;
      pollfd p{read_fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return ready == 0;
      if (!read_once()) return false;
    }
    return true;
  }

  // SIGKILLs the child, reaps it and drains what it wrote before it died.
  int kill_and_drain() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    while (read_once()) {
    }
    return status;
  }

  // Complete lines so far; a partial last line (cut by the kill) is not acknowledged.
  std::vector<std::string_view> complete_lines() const {
    std::vector<std::string_view> out;
    std::string_view rest = buffer_;
    for (std::size_t nl = rest.find('\n'); nl != std::string_view::npos; nl = rest.find('\n')) {
      out.push_back(rest.substr(0, nl));
      rest.remove_prefix(nl + 1);
    }
    return out;
  }
  std::size_t partial_bytes() const { return buffer_.size() - (buffer_.rfind('\n') + 1); }
  std::size_t lines() const { return lines_; }

 private:
  // One read(2); false at end of file or on error.
  bool read_once() {
    char chunk[65536];
    for (;;) {
      const ssize_t n = ::read(read_fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      const std::string_view got{chunk, static_cast<std::size_t>(n)};
      lines_ += static_cast<std::size_t>(std::count(got.begin(), got.end(), '\n'));
      buffer_.append(got);
      return true;
    }
  }

  pid_t pid_ = -1;
  int read_fd_ = -1;
  std::string buffer_;
  std::size_t lines_ = 0;
};

// The seed of the kill schedule: --gtest_random_seed if given, else a fresh one in the same
// range (1..99999) so that it can be passed back as --gtest_random_seed.
int kill_schedule_seed() {
  if (GTEST_FLAG_GET(random_seed) != 0) return GTEST_FLAG_GET(random_seed);
  if (const int seed = ::testing::UnitTest::GetInstance()->random_seed(); seed != 0) return seed;
  std::random_device device;
  return static_cast<int>(device() % 99'999U) + 1;
}

// Keys and a data directory are created once; no Ledger stays open in this process while a
// child runs (LMDB allows one environment per process and file, and the child writes).
class KilledWriter : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    ASSERT_TRUE(ledger::KeyRing::create(keys_dir(), "crash-key").is_ok());
    auto keys = ledger::KeyRing::load(keys_dir());
    ASSERT_TRUE(keys.is_ok()) << keys.status().to_string();
    keys_ = *keys;
    ASSERT_TRUE(ledger::Ledger::create(data_dir(), *keys_).is_ok());
  }

  std::unique_ptr<ledger::Ledger> open_ledger() {
    ledger::LedgerOptions options;
    options.data_dir = data_dir();
    options.keys = keys_;
    options.projectors = {view_};
    auto opened = ledger::Ledger::open(options);
    EXPECT_TRUE(opened.is_ok()) << opened.status().to_string();
    if (!opened.is_ok()) return nullptr;
    return std::move(*opened);
  }

  // Records the acks of one round; the same event acknowledged twice (a duplicate) must carry
  // the same receipt every time, in this round or any earlier one.
  void record_acks(const std::vector<Ack>& acks) {
    for (const auto& ack : acks) {
      auto [it, fresh] = acked_.emplace(std::make_pair(ack.project, ack.id), ack);
      if (fresh) {
        // Stored before this child started, yet never acknowledged: a retry of an event that an
        // earlier child committed but was killed before reporting.
        if (ack.seq <= last_heads_[ack.project]) ++retried_unacknowledged_;
        continue;
      }
      ASSERT_EQ(it->second.seq, ack.seq)
          << "event " << to_hex(ack.id) << " of " << ack.project << " was acknowledged twice "
          << "with different seqs";
      ASSERT_EQ(to_hex(it->second.hash), to_hex(ack.hash))
          << "event " << to_hex(ack.id) << " of " << ack.project << " was acknowledged twice "
          << "with different hashes";
    }
  }

  // Opens the ledger after a kill and checks everything: the chain verifies; each project's
  // events are dense from 1 to the head, each event id appears once; every event acknowledged
  // in this round (through read()) and in every earlier round is stored with the acknowledged
  // hash and id; heads never go backwards.
  void check_after_kill(const std::vector<Ack>& round_acks) {
    auto ledger = open_ledger();
    ASSERT_NE(ledger, nullptr);

    auto report = ledger::verify(*ledger, {});
    ASSERT_TRUE(report.is_ok()) << report.status().to_string();
    ASSERT_FALSE(report->problem.has_value())
        << "chain of " << report->problem->project << " fails at seq " << report->problem->seq
        << ": " << report->problem->reason;
    EXPECT_TRUE(report->payloads_opened || report->events == 0);

    // The views committed with the events: never behind or ahead of their chain.
    for (const std::string_view name : kChildProjects) {
      auto head = ledger->head(std::string(name));
      auto applied = ledger->projection_seq(*view_, name);
      ASSERT_TRUE(head.is_ok() && applied.is_ok());
      EXPECT_EQ(*applied, head->seq) << name << ": the case view is out of step with its chain";
    }

    std::uint64_t head_total = 0;
    // Per project, per seq: the stored event's hash and id.
    std::map<std::string, std::vector<std::pair<Digest, EventId>>> stored;
    for (const std::string_view name : kChildProjects) {
      const std::string project{name};
      auto head = ledger->head(project);
      ASSERT_TRUE(head.is_ok()) << head.status().to_string();
      ASSERT_GE(head->seq, last_heads_[project]) << project << " lost committed events";
      last_heads_[project] = head->seq;
      head_total += head->seq;

      auto& events = stored[project];
      events.reserve(head->seq);
      std::set<EventId> ids;
      std::uint64_t expected = 1;
      bool dense = true;
      ledger::DecodedEnvelope envelope;
      const Status scanned = ledger->scan(project, 1, 0, [&](const ledger::StoredEvent& event) {
        if (event.seq != expected++) {
          dense = false;
          return false;
        }
        if (!ledger::decode_envelope(as_bytes(event.envelope), envelope).is_ok()) {
          dense = false;
          return false;
        }
        events.emplace_back(event.hash, envelope.event_id);
        ids.insert(envelope.event_id);
        return true;
      });
      ASSERT_TRUE(scanned.is_ok()) << scanned.to_string();
      ASSERT_TRUE(dense) << project << ": events are not dense or do not decode near seq "
                         << expected - 1;
      ASSERT_EQ(events.size(), head->seq) << project << ": head and stored events disagree";
      ASSERT_EQ(ids.size(), events.size()) << project << ": an event id is stored twice";
      if (!events.empty()) {
        EXPECT_EQ(to_hex(events.back().first), to_hex(head->hash)) << project << ": head hash";
      }
    }
    EXPECT_EQ(report->events, head_total);

    std::map<std::string, std::uint64_t> max_acked;
    for (const auto& ack : round_acks) {
      auto event = ledger->read(ack.project, ack.seq);
      ASSERT_TRUE(event.is_ok()) << "acknowledged event " << ack.project << "/" << ack.seq
                                 << " is missing: " << event.status().to_string();
      ASSERT_EQ(to_hex(event->hash), to_hex(ack.hash))
          << "acknowledged event " << ack.project << "/" << ack.seq << " has another hash";
      max_acked[ack.project] = std::max(max_acked[ack.project], ack.seq);
    }
    for (const auto& [project, seq] : max_acked) {
      ASSERT_GE(last_heads_[project], seq) << project << ": head is behind an acknowledged seq";
    }
    for (const auto& [key, ack] : acked_) {  // Every round so far, with the event ids too.
      const auto it = stored.find(ack.project);
      ASSERT_NE(it, stored.end()) << "acknowledged project " << ack.project << " is unknown";
      ASSERT_LE(ack.seq, it->second.size())
          << "acknowledged event " << ack.project << "/" << ack.seq << " is missing";
      const auto& [hash, id] = it->second[ack.seq - 1];
      ASSERT_EQ(to_hex(hash), to_hex(ack.hash))
          << "acknowledged event " << ack.project << "/" << ack.seq;
      ASSERT_EQ(to_hex(id), to_hex(ack.id))
          << "acknowledged event " << ack.project << "/" << ack.seq << " holds another event id";
    }
    total_events_ = head_total;
  }

  std::filesystem::path keys_dir() const { return dir_ / "keys"; }
  std::filesystem::path data_dir() const { return dir_ / "data"; }

  TempDir dir_;
  std::shared_ptr<const ledger::KeyRing> keys_;
  std::shared_ptr<proj::CaseProjector> view_ = std::make_shared<proj::CaseProjector>();
  std::map<std::pair<std::string, EventId>, Ack> acked_;
  std::map<std::string, std::uint64_t> last_heads_;
  std::uint64_t total_events_ = 0;
  std::size_t retried_unacknowledged_ = 0;
};

TEST_F(KilledWriter, EveryAcknowledgedEventSurvivesSigkillAndTheChainVerifies) {
  const int seed = kill_schedule_seed();
  SCOPED_TRACE("kill schedule seed " + std::to_string(seed) +
               " (replay with --gtest_random_seed=" + std::to_string(seed) + ")");
  std::printf("[ seed     ] kill schedule seed %d\n", seed);
  std::mt19937 rng{static_cast<std::uint32_t>(seed)};

  std::size_t total_acks = 0;
  for (int round = 0; round < kRounds; ++round) {
    // Most rounds kill a random time after the first receipt; some right after it; some at a
    // random moment after the spawn, possibly before the child finished opening the ledger.
    enum class When { kAfterDelay, kAtFirstReceipt, kBlind } when = When::kAfterDelay;
    if (round % 6 == 1) when = When::kAtFirstReceipt;
    if (round % 6 == 4) when = When::kBlind;
    const milliseconds delay{when == When::kAfterDelay ? 3 + rng() % 148
                             : when == When::kBlind    ? rng() % 40
                                                       : 0};
    std::ostringstream trace;
    trace << "round " << round << ", kill "
          << (when == When::kBlind ? "after spawn" : "after first receipt") << " + "
          << delay.count() << " ms";
    SCOPED_TRACE(trace.str());

    Child child;
    const std::string error =
        child.spawn({CRASH_CHILD_PATH, data_dir().string(), keys_dir().string(), kProjectBase,
                     std::to_string(kChildThreads), std::to_string(round), std::to_string(seed)});
    ASSERT_TRUE(error.empty()) << error;

    bool alive = true;
    if (when == When::kBlind) {
      alive = child.read_until(Clock::now() + delay);
    } else {
      alive = child.read_until(Clock::now() + kFirstReceiptTimeout, 1);
      ASSERT_TRUE(alive) << "the child ended before its first receipt";
      ASSERT_GE(child.lines(), 1U) << "no receipt within " << kFirstReceiptTimeout.count() << " ms";
      if (delay.count() > 0) alive = child.read_until(Clock::now() + delay);
    }
    const int status = child.kill_and_drain();
    ASSERT_TRUE(alive) << "the child ended before it was killed";
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child was not killed by SIGKILL but " << describe_wait_status(status);

    std::vector<Ack> acks;
    for (std::string_view line : child.complete_lines()) {
      auto ack = parse_ack(line);
      ASSERT_TRUE(ack.has_value()) << "malformed receipt line: '" << line << "'";
      acks.push_back(std::move(*ack));
    }
    // A pipe write of one line is atomic, so a kill never leaves half a line.
    EXPECT_EQ(child.partial_bytes(), 0U);
    total_acks += acks.size();
    record_acks(acks);
    if (HasFatalFailure()) return;
    check_after_kill(acks);
    if (HasFatalFailure()) return;
  }

  // After all the kills the ledger still takes appends, continuing each chain.
  auto ledger = open_ledger();
  ASSERT_NE(ledger, nullptr);
  for (const std::string_view name : kChildProjects) {
    const std::string project{name};
    auto result = ledger->append(project, make_drafts(3)).get();
    ASSERT_TRUE(result.is_ok()) << result.status().to_string();
    EXPECT_EQ((*result)[0].seq, last_heads_[project] + 1);
  }
  auto report = ledger::verify(*ledger, {});
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_FALSE(report->problem.has_value()) << report->problem->reason;
  EXPECT_EQ(report->events, total_events_ + 6);
  // The views built through 40 kills equal views rebuilt from the chains.
  ASSERT_NO_FATAL_FAILURE(expect_views_match_a_rebuild(*ledger));
  std::printf(
      "[ stats    ] %d rounds, %zu receipts acknowledged, %zu distinct events acked, "
      "%llu events stored, %zu retries of events committed but unacknowledged before a kill\n",
      kRounds, total_acks, acked_.size(), static_cast<unsigned long long>(total_events_),
      retried_unacknowledged_);
}

// ---- The poison rule ----

class PoisonedWriter : public LedgerTest {};

TEST_F(PoisonedWriter, FailedCommitFailsThatAndEveryLaterAppendUntilReopen) {
  const auto first = append_ok("clinic-a", make_drafts(3));
  ASSERT_EQ(first.size(), 3U);

  ledger_->inject_commit_failures(1);
  const ledger::EventDraft lost = make_draft();
  auto failed = ledger_->append("clinic-a", {lost}).get();
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.status().code(), Code::kFatal) << failed.status().to_string();

  // The injected failure is used up, yet the writer stays poisoned: sequential appends,
  // appends to a project that needs a new data key, and concurrent appends all fail.
  for (int i = 0; i < 3; ++i) {
    auto later = ledger_->append("clinic-a", make_drafts(2)).get();
    ASSERT_FALSE(later.is_ok());
    EXPECT_EQ(later.status().code(), Code::kFatal) << later.status().to_string();
  }
  auto new_project = ledger_->append("clinic-b", make_drafts(1)).get();
  ASSERT_FALSE(new_project.is_ok());
  EXPECT_EQ(new_project.status().code(), Code::kFatal) << new_project.status().to_string();
  std::vector<std::future<Result<std::vector<ledger::Receipt>>>> concurrent;
  for (int i = 0; i < 8; ++i) concurrent.push_back(ledger_->append("clinic-a", make_drafts(1)));
  for (auto& f : concurrent) {
    auto r = f.get();
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), Code::kFatal) << r.status().to_string();
  }
  // Reads still work and show that nothing of the failed commits was written.
  auto head = ledger_->head("clinic-a");
  ASSERT_TRUE(head.is_ok());
  EXPECT_EQ(head->seq, 3U);
  EXPECT_EQ(to_hex(head->hash), to_hex(first.back().hash));

  reopen();
  auto again = append_ok("clinic-a", {lost});
  ASSERT_EQ(again.size(), 1U);
  EXPECT_EQ(again[0].seq, 4U);
  EXPECT_FALSE(again[0].duplicate) << "the event of the failed commit was stored after all";
  auto other = append_ok("clinic-b", make_drafts(2));
  ASSERT_EQ(other.size(), 2U);
  EXPECT_EQ(other[0].seq, 1U);

  auto report = ledger::verify(*ledger_, {});
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_FALSE(report->problem.has_value()) << report->problem->reason;
  EXPECT_EQ(report->events, 6U);
  EXPECT_EQ(report->projects, 2U);
}

// ---- Concurrent appends in one process ----

class ConcurrentAppends : public LedgerTest {};

TEST_F(ConcurrentAppends, SixteenThreadsGetUniqueDenseSeqsWhoseHashesMatchTheStoredEvents) {
  constexpr int kThreads = 16;
  constexpr int kBatchesPerThread = 40;
  const std::vector<std::string> projects = {"north", "south"};
  struct Got {
    std::string project;
    EventId id{};
    ledger::Receipt receipt;
  };
  std::vector<std::vector<Got>> got(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng{static_cast<std::uint32_t>(1000 + t)};
      for (int b = 0; b < kBatchesPerThread; ++b) {
        const std::string& project = projects[rng() % projects.size()];
        auto drafts = make_drafts(1 + rng() % 5, 64 + rng() % 512);
        std::vector<EventId> ids;
        for (const auto& d : drafts) ids.push_back(d.event_id);
        auto result = ledger_->append(project, std::move(drafts)).get();
        if (!result.is_ok()) {
          errors[static_cast<std::size_t>(t)] = result.status().to_string();
          return;
        }
        for (std::size_t i = 0; i < ids.size(); ++i) {
          got[static_cast<std::size_t>(t)].push_back(Got{project, ids[i], (*result)[i]});
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) ASSERT_TRUE(e.empty()) << e;

  std::map<std::string, std::vector<const Got*>> by_project;
  for (const auto& list : got) {
    for (const auto& g : list) by_project[g.project].push_back(&g);
  }
  std::uint64_t total = 0;
  for (const auto& project : projects) {
    auto& list = by_project[project];
    std::sort(list.begin(), list.end(),
              [](const Got* a, const Got* b) { return a->receipt.seq < b->receipt.seq; });
    auto head = ledger_->head(project);
    ASSERT_TRUE(head.is_ok());
    ASSERT_EQ(head->seq, list.size()) << project;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const Got& g = *list[i];
      ASSERT_EQ(g.receipt.seq, i + 1) << project << ": seqs are not unique and dense";
      EXPECT_FALSE(g.receipt.duplicate);
      auto stored = ledger_->read(project, g.receipt.seq);
      ASSERT_TRUE(stored.is_ok()) << stored.status().to_string();
      ASSERT_EQ(to_hex(stored->hash), to_hex(g.receipt.hash)) << project << "/" << g.receipt.seq;
      ledger::DecodedEnvelope envelope;
      ASSERT_TRUE(ledger::decode_envelope(as_bytes(stored->envelope), envelope).is_ok());
      ASSERT_EQ(to_hex(envelope.event_id), to_hex(g.id)) << project << "/" << g.receipt.seq;
    }
    if (!list.empty()) {
      EXPECT_EQ(to_hex(head->hash), to_hex(list.back()->receipt.hash));
    }
    total += list.size();
  }

  auto report = ledger::verify(*ledger_, {});
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_FALSE(report->problem.has_value()) << report->problem->reason;
  EXPECT_EQ(report->events, total);
}

}  // namespace
}  // namespace trail::testing
