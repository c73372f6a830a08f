#include "ledger/ledger.h"

#include <pthread.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "ledger/internal/event_id_index.h"
#include "ledger/internal/layout.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/internal/projection_tables.h"
#include "ledger/internal/replay.h"
#include "ledger/internal/view_store.h"
#include "ledger/internal/writer.h"
#include "ledger/sha256.h"

namespace trail::ledger {
namespace fs = std::filesystem;
using detail::Table;


Status Ledger::create(const fs::path& data_dir, const KeyRing& keys,
                      std::size_t initial_map_bytes) {
  TRAIL_ASSERT(sodium_init() >= 0);
  std::error_code ec;
  if (fs::exists(data_dir / "data.mdb", ec)) {
    return Status::error(Code::kConflict, data_dir.string() + " already holds a ledger");
  }
  detail::EnvOptions options;
  options.create = true;
  options.initial_map_bytes = initial_map_bytes;
  TRAIL_ASSIGN_OR_RETURN(auto env, detail::Env::open(data_dir, options));
  TRAIL_ASSIGN_OR_RETURN(auto txn, env->begin_write());
  const Digest check = keys.kek_check();
  TRAIL_TRY(txn.put(Table::kMeta, as_bytes(detail::kMetaFormat), as_bytes(detail::kFormatVersion),
                    /*no_overwrite=*/true));
  TRAIL_TRY(txn.put(Table::kMeta, as_bytes(detail::kMetaKekCheck), check));
  TRAIL_TRY(txn.put(Table::kMeta, as_bytes(detail::kMetaNextKeyId),
                    as_bytes(detail::key_id_key(1))));
  return txn.commit();
}

Result<std::unique_ptr<Ledger>> Ledger::open(const LedgerOptions& options) {
  TRAIL_ASSERT(sodium_init() >= 0);
  const bool read_only = options.read_only || options.keys == nullptr;
  detail::EnvOptions env_options;
  env_options.read_only = read_only;
  env_options.initial_map_bytes = options.initial_map_bytes;
  std::unique_ptr<Ledger> ledger{new Ledger()};
  TRAIL_ASSIGN_OR_RETURN(ledger->env_, detail::Env::open(options.data_dir, env_options));
  ledger->keys_ = options.keys;
  {
    TRAIL_ASSIGN_OR_RETURN(auto txn, ledger->env_->begin_read());
    TRAIL_ASSIGN_OR_RETURN(auto format, txn.get(Table::kMeta, as_bytes(detail::kMetaFormat)));
    if (!format || as_chars(*format) != detail::kFormatVersion) {
      return Status::error(Code::kCorrupt, options.data_dir.string() +
                                               " has an unknown or missing ledger format");
    }
    if (options.keys) {
      TRAIL_ASSIGN_OR_RETURN(auto check, txn.get(Table::kMeta, as_bytes(detail::kMetaKekCheck)));
      const Digest expected = options.keys->kek_check();
      if (!check || check->size() != expected.size() ||
          std::memcmp(check->data(), expected.data(), expected.size()) != 0) {
        return Status::error(Code::kInvalid,
                             "the key directory does not belong to " + options.data_dir.string());
      }
    }
  }
  // The views' environment. Read-only, only when there are views to read: a directory no
  // writable open has moved the views of keeps them in the chain's environment.
  if (!read_only || !options.projectors.empty()) {
    detail::ViewStore::Options view_options;
    view_options.read_only = read_only;
    view_options.initial_map_bytes = options.initial_map_bytes;
    TRAIL_ASSIGN_OR_RETURN(ledger->views_, detail::ViewStore::open(options.data_dir, view_options));
  }
  ledger->views_env_ = ledger->views_ ? &ledger->views_->env() : ledger->env_.get();
  std::vector<detail::ProjectorBinding> bindings;
  ledger->id_index_ = std::make_unique<detail::EventIdIndex>();
  std::vector<Projector*> views{ledger->id_index_.get()};
  for (const auto& projector : options.projectors) {
    TRAIL_ASSERT(projector != nullptr);
    if (projector->name() == detail::kEventIdIndexName) {
      return Status::error(Code::kInvalid, "a view may not be named " +
                                               std::string(detail::kEventIdIndexName));
    }
    views.push_back(projector.get());
  }
  for (Projector* projector : views) {
    detail::ProjectorBinding binding{projector, {}};
    for (const auto& table : projector->tables()) {
      auto dbi = ledger->views_env_->open_named(table);
      // Read-only, a table a newer build added is simply empty: the directory has not been
      // opened for writing since (the writer creates it and catches the view up).
      if (!dbi.is_ok() && read_only && dbi.status().code() == Code::kNotFound) {
        binding.dbis.push_back(detail::kMissingTable);
        continue;
      }
      if (!dbi.is_ok()) return dbi.status();
      binding.dbis.push_back(*dbi);
    }
    bindings.push_back(std::move(binding));
  }
  ledger->projectors_ = options.projectors;
  ledger->bindings_ = bindings;
  detail::TreeOptions tree;
  if (options.merkle_trees) {
    auto merkle = ledger->env_->open_named("merkle");
    auto checkpoints = ledger->env_->open_named("checkpoints");
    if (merkle.is_ok() && checkpoints.is_ok()) {
      tree.enabled = true;
      tree.merkle = *merkle;
      tree.checkpoints = *checkpoints;
      ledger->has_trees_ = true;
      ledger->merkle_dbi_ = *merkle;
      ledger->checkpoints_dbi_ = *checkpoints;
    } else if (!read_only || (merkle.status().code() != Code::kNotFound &&
                              checkpoints.status().code() != Code::kNotFound)) {
      return !merkle.is_ok() ? merkle.status() : checkpoints.status();
    }
  }
  tree.origin = options.checkpoint_origin;
  if (tree.origin.empty() && ledger->keys_) tree.origin = ledger->keys_->signer().name();
  tree.checkpoint_every = options.checkpoint_every_events;
  ledger->replay_chunk_events_ = std::max<std::uint64_t>(1, options.replay_chunk_events);
  if (!read_only) {
    Ledger* self = ledger.get();
    ledger->writer_ = std::make_unique<detail::Writer>(
        *ledger->env_, *ledger->views_env_, ledger->keys_, bindings.front(),
        std::vector<detail::ProjectorBinding>(bindings.begin() + 1, bindings.end()),
        [self](std::uint32_t key_id) { return self->data_key_by_id(key_id); }, options.on_commit,
        tree);
    if (options.catch_up_views) {
      TRAIL_TRY(ledger->catch_up_views());
      TRAIL_TRY(ledger->drop_views_from_chain_env());
    }
    if (tree.enabled) {
      ledger->checkpointer_ = std::thread{
          [self, interval = options.checkpoint_interval] {
            pthread_setname_np(pthread_self(), "trail-checkpoint");
            self->run_checkpointer(interval);
          }};
    }
  }
  return ledger;
}

Ledger::~Ledger() {
  {
    std::lock_guard lock{timer_mutex_};
    timer_stopping_ = true;
  }
  timer_wake_.notify_one();
  if (checkpointer_.joinable()) checkpointer_.join();
  writer_.reset();
}

std::size_t Ledger::map_bytes() const { return env_->map_bytes(); }

void Ledger::inject_view_commit_failures(int count) {
  TRAIL_ASSERT(writer_ != nullptr);
  writer_->inject_view_commit_failures(count);
}

bool Ledger::views_were_rebuilt() const { return views_ != nullptr && views_->wiped(); }

void Ledger::inject_commit_failures(int count) {
  TRAIL_ASSERT(writer_ != nullptr);
  writer_->inject_commit_failures(count);
}

Result<std::shared_ptr<const DataKey>> Ledger::data_key_by_id(std::uint32_t key_id) const {
  if (!keys_) return Status::error(Code::kInvalid, "no key directory: payloads cannot be opened");
  {
    std::lock_guard lock{keys_mutex_};
    if (auto it = by_id_.find(key_id); it != by_id_.end()) return it->second;
  }
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  TRAIL_ASSIGN_OR_RETURN(auto record, txn.get(Table::kKeys, as_bytes(detail::key_id_key(key_id))));
  if (!record) return Status::error(Code::kNotFound, "data key " + std::to_string(key_id) + " is missing");
  std::string project;
  WrappedKey wrapped;
  if (!detail::decode_wrapped(*record, project, wrapped)) {
    return Status::error(Code::kCorrupt, "data key record " + std::to_string(key_id) + " is malformed");
  }
  SecretKey secret;
  TRAIL_TRY(keys_->unwrap(key_id, project, wrapped, secret));
  auto key = std::make_shared<const DataKey>(key_id, secret);
  std::lock_guard lock{keys_mutex_};
  return by_id_.emplace(key_id, std::move(key)).first->second;
}

Result<std::shared_ptr<const DataKey>> Ledger::project_key(const std::string& project) {
  {
    std::lock_guard lock{keys_mutex_};
    if (auto it = by_project_.find(project); it != by_project_.end()) return it->second;
  }
  std::optional<std::uint32_t> id;
  {
    TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
    TRAIL_ASSIGN_OR_RETURN(auto stored,
                           txn.get(Table::kProjectKeys, as_bytes(detail::project_key(project))));
    if (stored && stored->size() == 4) id = get_u32_be(stored->data());
  }
  if (!id) {  // First use: the writer creates the key in its own transaction.
    auto created = writer_->submit(detail::KeyJob{project, {}}).get();
    if (!created.is_ok()) return std::move(created).take_status();
    id = *created;
  }
  TRAIL_ASSIGN_OR_RETURN(auto key, data_key_by_id(*id));
  std::lock_guard lock{keys_mutex_};
  by_project_.emplace(project, key);
  return key;
}

Status Ledger::seal_all(const std::string& project, const DataKey& key,
                        std::vector<EventDraft>& drafts, std::vector<SealedEvent>& sealed) const {
  const bool keep_plaintext = !projectors_.empty();  // Projectors fold the plaintext.
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    if (Status s = validate_draft(drafts[i]); !s.is_ok()) {
      return Status::error(Code::kInvalid, "event " + std::to_string(i) + ": " + s.detail());
    }
  }
  // One system call draws a seed; ChaCha20 expands it into every nonce of the batch.
  const std::size_t nonce_bytes = key.nonce_bytes();
  std::string nonces(drafts.size() * nonce_bytes, '\0');
  unsigned char seed[randombytes_SEEDBYTES];
  randombytes_buf(seed, sizeof seed);
  randombytes_buf_deterministic(nonces.data(), nonces.size(), seed);
  sodium_memzero(seed, sizeof seed);

  sealed.resize(drafts.size());
  std::string header;
  std::string scratch;
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    EventDraft& d = drafts[i];
    SealedEvent& out = sealed[i];
    encode_header(project, d, header);
    out.body_mac = body_mac(key, header, d.payload, scratch);
    out.key_id = key.id();
    out.cipher = key.cipher();
    encode_aad_from_header(header, out.key_id, out.cipher, scratch);
    out.nonce.assign(nonces, i * nonce_bytes, nonce_bytes);
    key.seal_with_nonce(as_bytes(scratch), as_bytes(d.payload), as_bytes(out.nonce),
                        out.ciphertext);
    if (!keep_plaintext) {
      d.payload.clear();
      d.payload.shrink_to_fit();
    }
    out.header = std::move(d);
    out.envelope = make_envelope_image(project, out);  // Here, not on the writer thread.
  }
  return Status::ok();
}

std::future<Result<std::vector<Receipt>>> Ledger::append(std::string project,
                                                         std::vector<EventDraft> drafts) {
  auto promise = std::make_shared<std::promise<Result<std::vector<Receipt>>>>();
  auto future = promise->get_future();
  append_async(std::move(project), std::move(drafts),
               [promise](Result<std::vector<Receipt>> result) { promise->set_value(std::move(result)); });
  return future;
}

void Ledger::append_async(std::string project, std::vector<EventDraft> drafts,
                          AppendCallback done, AppendGuard guard) {
  if (!writer_) return done(Status::error(Code::kBusy, "ledger is open read-only"));
  if (Status s = validate_project(project); !s.is_ok()) return done(s);
  if (drafts.empty()) return done(Status::error(Code::kInvalid, "batch is empty"));
  if (drafts.size() > kBatchEventsMax) {
    return done(Status::error(
        Code::kInvalid, "batch of " + std::to_string(drafts.size()) + " events exceeds " +
                            std::to_string(kBatchEventsMax) + " (kBatchEventsMax)"));
  }
  auto key = project_key(project);
  if (!key.is_ok()) return done(key.status());
  detail::AppendJob job;
  if (Status s = seal_all(project, **key, drafts, job.events); !s.is_ok()) return done(s);
  job.key = *key;
  job.project = std::move(project);
  job.done = std::move(done);
  job.guard = std::move(guard);
  appended_.store(true, std::memory_order_relaxed);
  writer_->submit(std::move(job));
}

Result<Head> Ledger::head(std::string_view project) const {
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  TRAIL_ASSIGN_OR_RETURN(auto stored, txn.get(Table::kHeads, as_bytes(detail::project_key(project))));
  if (!stored) return Head{};
  auto decoded = detail::decode_head(*stored);
  if (!decoded) return Status::error(Code::kCorrupt, "head record is malformed");
  return Head{decoded->seq, decoded->hash, decoded->server_time_us};
}

Result<std::vector<std::string>> Ledger::projects() const {
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  auto cursor = txn.cursor(Table::kHeads);
  std::vector<std::string> out;
  TRAIL_ASSIGN_OR_RETURN(bool more, cursor.first());
  while (more) {
    const ByteView k = cursor.key();
    if (k.empty() || k[0] + 1U != k.size()) return Status::error(Code::kCorrupt, "malformed head key");
    out.emplace_back(as_chars(k.subspan(1)));
    TRAIL_ASSIGN_OR_RETURN(more, cursor.next());
  }
  return out;
}

Result<StoredEvent> Ledger::read(std::string_view project, std::uint64_t seq) const {
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  TRAIL_ASSIGN_OR_RETURN(auto stored, txn.get(Table::kEvents, as_bytes(detail::event_key(project, seq))));
  if (!stored) {
    return Status::error(Code::kNotFound, "no event " + std::to_string(seq) + " in " + std::string(project));
  }
  return StoredEvent{seq, std::string(as_chars(*stored)), leaf_hash(*stored)};
}

Status Ledger::scan(std::string_view project, std::uint64_t from, std::uint64_t limit,
                    const std::function<bool(const StoredEvent&)>& visit) const {
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  auto cursor = txn.cursor(Table::kEvents);
  TRAIL_ASSIGN_OR_RETURN(bool more, cursor.seek(as_bytes(detail::event_key(project, from))));
  std::uint64_t count = 0;
  StoredEvent event;
  while (more && (limit == 0 || count < limit)) {
    if (!detail::parse_event_key(cursor.key(), project, event.seq)) break;
    event.envelope.assign(as_chars(cursor.value()));
    event.hash = leaf_hash(cursor.value());
    if (!visit(event)) break;
    ++count;
    TRAIL_ASSIGN_OR_RETURN(more, cursor.next());
  }
  return Status::ok();
}

Result<OpenedEvent> Ledger::open_event(const StoredEvent& stored) const {
  OpenedEvent out;
  out.hash = stored.hash;
  TRAIL_TRY(decode_envelope(as_bytes(stored.envelope), out.envelope));
  TRAIL_ASSIGN_OR_RETURN(auto key, data_key_by_id(out.envelope.key_id));
  std::string aad;
  encode_aad(out.envelope, aad);
  TRAIL_TRY(key->open(out.envelope.cipher, out.envelope.nonce, as_bytes(aad),
                      out.envelope.ciphertext, out.payload));
  return out;
}

}  // namespace trail::ledger

namespace trail::ledger {

Status Ledger::read_projection(const Projector& projector,
                               const std::function<Status(const ProjectionTables&)>& read) const {
  for (const auto& binding : bindings_) {
    if (binding.projector != &projector) continue;
    TRAIL_ASSIGN_OR_RETURN(auto txn, views_env_->begin_read());
    detail::ReadProjectionTables tables{txn, binding.dbis};
    return read(tables);
  }
  return Status::error(Code::kInvalid, "projector " + std::string(projector.name()) +
                                           " is not registered with this ledger");
}

Result<std::uint64_t> Ledger::projection_seq(const Projector& projector,
                                             std::string_view project) const {
  TRAIL_ASSIGN_OR_RETURN(auto txn, views_env_->begin_read());
  TRAIL_ASSIGN_OR_RETURN(auto stored,
                         txn.get(Table::kProjectionState,
                                 as_bytes(detail::projection_state_key(projector.name(), project))));
  if (!stored) return std::uint64_t{0};
  if (stored->size() != 8) return Status::error(Code::kCorrupt, "projection state is malformed");
  return get_u64_be(stored->data());
}

Result<std::shared_ptr<const DataKey>> Ledger::existing_project_key(
    std::string_view project) const {
  std::optional<std::uint32_t> id;
  {
    TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
    TRAIL_ASSIGN_OR_RETURN(auto stored,
                           txn.get(Table::kProjectKeys, as_bytes(detail::project_key(project))));
    if (!stored) {
      return Status::error(Code::kNotFound, "project " + std::string(project) + " has no data key");
    }
    if (stored->size() != 4) return Status::error(Code::kCorrupt, "project key entry is malformed");
    id = get_u32_be(stored->data());
  }
  return data_key_by_id(*id);
}

}  // namespace trail::ledger

namespace trail::ledger {
Result<std::uint64_t> Ledger::first_seq_at_or_after(std::string_view project,
                                                     TimeUs time_us) const {
  TRAIL_ASSIGN_OR_RETURN(Head head, this->head(project));
  std::uint64_t lo = 1;
  std::uint64_t hi = head.seq + 1;
  DecodedEnvelope envelope;
  while (lo < hi) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    TRAIL_ASSIGN_OR_RETURN(StoredEvent stored, read(project, mid));
    TRAIL_TRY(decode_envelope(as_bytes(stored.envelope), envelope));
    if (envelope.server_time_us < time_us) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

Status Ledger::rebuild_projections(
    const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  if (!writer_) return Status::error(Code::kBusy, "ledger is open read-only");
  auto work = [this, &progress]() -> Status {
    TRAIL_ASSIGN_OR_RETURN(auto projects, this->projects());
    std::vector<std::pair<std::string, std::uint64_t>> heads;
    std::uint64_t total = 0;
    for (const auto& project : projects) {
      TRAIL_ASSIGN_OR_RETURN(Head head, this->head(project));
      heads.emplace_back(project, head.seq);
      total += head.seq;
    }
    {
      TRAIL_ASSIGN_OR_RETURN(auto txn, views_env_->begin_write());
      for (const auto& binding : bindings_) {
        for (const MDB_dbi dbi : binding.dbis) TRAIL_TRY(txn.clear(dbi));
      }
      TRAIL_TRY(txn.clear(views_env_->dbi(Table::kProjectionState)));
      TRAIL_TRY(txn.commit());
    }
    std::uint64_t done = 0;
    if (progress) progress(done, total);
    for (const auto& [project, head_seq] : heads) {
      TRAIL_TRY(replay_in_chunks(project, 0, head_seq, bindings_, [&](std::uint64_t chunk) {
        done += chunk;
        if (progress) progress(done, total);
      }));
    }
    return Status::ok();
  };
  return writer_->run_exclusive(work).get();
}

Status Ledger::replay_in_chunks(const std::string& project, std::uint64_t after,
                                std::uint64_t to, const std::vector<detail::ProjectorBinding>& bindings,
                                const std::function<void(std::uint64_t)>& advanced) {
  if (to <= after || bindings.empty()) return Status::ok();
  TRAIL_ASSIGN_OR_RETURN(auto project_key, existing_project_key(project));
  const detail::KeyLookup lookup = [this](std::uint32_t id) { return data_key_by_id(id); };
  std::uint64_t applied = after;
  while (applied < to) {
    const std::uint64_t end = std::min(to, applied + replay_chunk_events_);
    // The chain's transaction only reads the events; it is begun first, as the writer's is.
    TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_write());
    TRAIL_ASSIGN_OR_RETURN(auto views, views_env_->begin_write());
    // Each view from where it stands now, not where the last chunk left it: between chunks
    // another process's writer (a traild beside `trailctl rebuild`) may have caught it up to
    // its own appends, and folding those events again would count them twice.
    std::map<std::uint64_t, std::vector<detail::ProjectorBinding>> by_seq;
    Status status = Status::ok();
    for (const auto& binding : bindings) {
      auto stands = detail::applied_seq(views, binding.projector->name(), project);
      if (!stands.is_ok()) {
        status = stands.status();
        break;
      }
      if (*stands < end) by_seq[*stands].push_back(binding);
    }
    for (const auto& [from, group] : by_seq) {
      if (!status.is_ok()) break;
      status = detail::replay(txn, views, project, from, end, group, *project_key, lookup);
    }
    for (const auto& binding : bindings) {
      if (!status.is_ok()) break;
      detail::WriteProjectionTables tables{views, binding.dbis};
      status = binding.projector->flush(tables);
    }
    if (status.is_ok()) status = views.commit();
    views.abort();  // After a failure before the commit (a committed one is gone already).
    txn.abort();    // Read only; the chain's write lock is not held past the chunk.
    if (!status.is_ok()) {  // What the projectors kept of this chunk was never committed.
      for (const auto& binding : bindings) binding.projector->discard();
    }
    if (status.code() == Code::kBusy) {  // Map full: grow and redo the chunk.
      TRAIL_TRY(views_env_->grow_map());
      continue;
    }
    TRAIL_TRY(status);
    if (advanced) advanced(end - applied);
    applied = end;
  }
  return Status::ok();
}

Status Ledger::catch_up_views() {
  auto work = [this]() -> Status {
    TRAIL_ASSIGN_OR_RETURN(auto projects, this->projects());
    // A view that has applied nothing of any chain starts from empty tables: whatever they
    // hold was written under another name (an earlier layout), not by this view. (No chain:
    // nothing to clear, and no commit at every open of an empty directory.)
    for (const auto& binding : bindings_) {
      if (projects.empty()) break;
      bool applied_any = false;
      for (const auto& project : projects) {
        TRAIL_ASSIGN_OR_RETURN(std::uint64_t applied, projection_seq(*binding.projector, project));
        applied_any = applied_any || applied > 0;
      }
      if (applied_any) continue;
      TRAIL_ASSIGN_OR_RETURN(auto txn, views_env_->begin_write());
      for (const MDB_dbi dbi : binding.dbis) TRAIL_TRY(txn.clear(dbi));
      TRAIL_TRY(txn.commit());
    }
    for (const auto& project : projects) {
      TRAIL_ASSIGN_OR_RETURN(Head head, this->head(project));
      std::vector<std::pair<std::uint64_t, const detail::ProjectorBinding*>> behind;
      for (const auto& binding : bindings_) {
        TRAIL_ASSIGN_OR_RETURN(std::uint64_t applied, projection_seq(*binding.projector, project));
        if (applied > head.seq) {
          return Status::error(Code::kCorrupt, "view " + std::string(binding.projector->name()) +
                                                   " of " + project + " is ahead of its chain");
        }
        if (applied == head.seq) continue;
        spdlog::info("view {} of project {} is {} events behind its chain: catching up",
                     binding.projector->name(), project, head.seq - applied);
        behind.emplace_back(applied, &binding);
      }
      // One pass along the chain for all of them: from the furthest behind, each stretch up to
      // where the next view stands is opened once and folded into every view already there.
      std::stable_sort(behind.begin(), behind.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      std::vector<detail::ProjectorBinding> group;
      std::size_t next = 0;
      std::uint64_t at = behind.empty() ? head.seq : behind.front().first;
      while (at < head.seq) {
        while (next < behind.size() && behind[next].first == at) {
          group.push_back(*behind[next++].second);
        }
        const std::uint64_t to = next < behind.size() ? behind[next].first : head.seq;
        TRAIL_TRY(replay_in_chunks(project, at, to, group, {}));
        at = to;
      }
    }
    for (const auto& binding : bindings_) {
      for (const auto& name : binding.projector->retired_tables()) {
        TRAIL_ASSIGN_OR_RETURN(auto txn, views_env_->begin_write());
        TRAIL_ASSIGN_OR_RETURN(bool dropped, txn.drop_named(name));
        TRAIL_TRY(txn.commit());
        if (dropped) {
          spdlog::info("deleted sub-database {}, retired by view {}", name,
                       binding.projector->name());
        }
      }
    }
    return Status::ok();
  };
  return writer_->run_exclusive(work).get();
}

Result<Digest> Ledger::projection_digest() const {
  TRAIL_ASSIGN_OR_RETURN(auto txn, views_env_->begin_read());
  std::string all;
  auto add = [&all](ByteView bytes) {
    std::uint8_t size[8];
    put_u64_be(size, bytes.size());
    all.append(reinterpret_cast<const char*>(size), 8);
    all.append(as_chars(bytes));
  };
  auto add_table = [&](MDB_dbi dbi) -> Status {
    auto cursor = txn.cursor(dbi);
    TRAIL_ASSIGN_OR_RETURN(bool more, cursor.first());
    while (more) {
      add(cursor.key());
      add(cursor.value());
      TRAIL_ASSIGN_OR_RETURN(more, cursor.next());
    }
    return Status::ok();
  };
  for (const auto& binding : bindings_) {
    const auto names = binding.projector->tables();
    for (std::size_t i = 0; i < binding.dbis.size(); ++i) {
      add(as_bytes(names[i]));
      if (binding.dbis[i] != detail::kMissingTable) TRAIL_TRY(add_table(binding.dbis[i]));
    }
  }
  add(as_bytes(std::string_view{"projection_state"}));
  TRAIL_TRY(add_table(views_env_->dbi(Table::kProjectionState)));
  return sha256(as_bytes(all));
}

Status Ledger::drop_views_from_chain_env() {
  auto work = [this]() -> Status {
    // What is there to move, looked up in a read transaction: most opens find nothing and
    // then take no write lock on the chain.
    std::vector<std::string> present;
    bool had_state = false;
    {
      TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
      for (const auto& binding : bindings_) {
        auto names = binding.projector->tables();
        for (auto& name : binding.projector->retired_tables()) names.push_back(std::move(name));
        for (auto& name : names) {
          MDB_dbi dbi = 0;
          if (mdb_dbi_open(txn.raw(), name.c_str(), 0U, &dbi) == MDB_SUCCESS) {
            present.push_back(std::move(name));
          }
        }
      }
      auto cursor = txn.cursor(Table::kProjectionState);
      TRAIL_ASSIGN_OR_RETURN(had_state, cursor.first());
    }
    if (present.empty() && !had_state) return Status::ok();
    for (;;) {
      TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_write());
      Status status = Status::ok();
      for (const auto& name : present) {
        if (!status.is_ok()) break;
        auto dropped = txn.drop_named(name);
        if (!dropped.is_ok()) status = dropped.status();
      }
      if (status.is_ok() && had_state) status = txn.clear(env_->dbi(Table::kProjectionState));
      if (status.is_ok()) status = txn.commit();
      if (status.code() != Code::kBusy) {
        TRAIL_TRY(status);
        break;
      }
      txn.abort();  // Freeing that many pages needs room in the map: grow it and redo.
      TRAIL_TRY(env_->grow_map());
    }
    spdlog::info("views moved to their own environment: {} sub-databases deleted from the "
                 "chain's",
                 present.size());
    return Status::ok();
  };
  return writer_->run_exclusive(work).get();
}

}  // namespace trail::ledger
