#include "ledger/key_ring.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

namespace trail::ledger {
namespace fs = std::filesystem;

namespace {

constexpr const char* kKekFile = "kek";
constexpr const char* kSigningSeedFile = "signing.key";
constexpr const char* kSigningPublicFile = "signing.pub";
constexpr const char* kKeyNameFile = "key_name";
constexpr std::size_t kKeyNameBytesMax = 128;

// Writes all of `bytes` to `fd`, syncs and closes it (also on failure); `path` names it in errors.
Status write_sync_close(int fd, const fs::path& path, ByteView bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      return Status::error(Code::kIo, "cannot write " + path.string() + ": " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return Status::error(Code::kIo, "cannot sync " + path.string() + ": " + why);
  }
  if (::close(fd) != 0) {
    return Status::error(Code::kIo, "cannot close " + path.string() + ": " + std::strerror(errno));
  }
  return Status::ok();
}

Status write_private_file(const fs::path& path, ByteView bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::error(Code::kIo, "cannot create " + path.string() + ": " + std::strerror(errno));
  }
  return write_sync_close(fd, path, bytes);
}

Status sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Status::error(Code::kIo, "cannot open " + dir.string() + ": " + std::strerror(errno));
  }
  const int rc = ::fsync(fd);
  const int sync_errno = errno;
  ::close(fd);
  if (rc != 0) {
    return Status::error(Code::kIo,
                         "cannot sync " + dir.string() + ": " + std::strerror(sync_errno));
  }
  return Status::ok();
}

// Makes `path` (mode 0600) hold exactly `bytes`, or leaves it as it was: the bytes go to a
// synced temporary file in the same directory first. With `replace` false an existing `path`
// wins (link() fails with EEXIST), so racing writers agree on the first file published.
Status publish_private_file(const fs::path& path, ByteView bytes, bool replace) {
  std::string temp = path.string() + ".new-XXXXXX";
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);  // Mode 0600.
  if (fd < 0) {
    return Status::error(Code::kIo, "cannot create a file beside " + path.string() + ": " +
                                        std::strerror(errno));
  }
  if (Status s = write_sync_close(fd, temp, bytes); !s.is_ok()) {
    ::unlink(temp.c_str());
    return s;
  }
  int rc = 0;
  int publish_errno = 0;
  if (replace) {
    rc = ::rename(temp.c_str(), path.c_str());
    publish_errno = errno;
    if (rc != 0) ::unlink(temp.c_str());
  } else {
    rc = ::link(temp.c_str(), path.c_str());
    publish_errno = errno;
    ::unlink(temp.c_str());
    if (rc != 0 && publish_errno == EEXIST) rc = 0;  // Another writer won; keep its file.
  }
  if (rc != 0) {
    return Status::error(Code::kIo,
                         "cannot write " + path.string() + ": " + std::strerror(publish_errno));
  }
  return sync_directory(path.parent_path());
}

// Reads exactly out.size() bytes from a file that only its owner may read.
Status read_private_file(const fs::path& path, std::span<std::uint8_t> out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::error(errno == ENOENT ? Code::kNotFound : Code::kIo,
                         "cannot read " + path.string() + ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077U) != 0) {
    return Status::error(Code::kInvalid, path.string() +
                                             " is readable by group or others; chmod 600 it");
  }
  if (static_cast<std::size_t>(st.st_size) != out.size()) {
    return Status::error(Code::kInvalid, path.string() + " has " + std::to_string(st.st_size) +
                                             " bytes, expected " + std::to_string(out.size()));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::error(Code::kIo, "cannot open " + path.string() + ": " + std::strerror(errno));
  }
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (done != out.size()) return Status::error(Code::kIo, "short read of " + path.string());
  return Status::ok();
}

// A key directory made before checkpoints were signed has no signing key: make one, unless
// another process got there first.
Status ensure_signing_key(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / kSigningSeedFile, ec)) return Status::ok();
  // KeyRing::create always writes key_name: without it this is no key directory (perhaps a
  // wrong path with the KEK in the environment), and nothing may be written to it.
  if (!fs::exists(dir / kKeyNameFile, ec)) {
    return Status::error(Code::kNotFound, dir.string() + " is not a key directory (no " +
                                              kSigningSeedFile + " or " + kKeyNameFile + ")");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status::error(Code::kNotFound,
                         "key directory " + dir.string() + " has no checkpoint signing key (" +
                             kSigningSeedFile + ") and is not writable, so none can be made; "
                             "load it once as a user that may write it");
  }
  {
    SecretKey seed;
    randombytes_buf(seed.data(), seed.size());
    TRAIL_TRY(publish_private_file(dir / kSigningSeedFile, {seed.data(), seed.size()}, false));
  }
  // signing.pub (for operators; load() derives the key from the seed) must match the seed
  // that won, which may be another process's.
  SecretKey seed;
  TRAIL_TRY(read_private_file(dir / kSigningSeedFile, {seed.data(), seed.size()}));
  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> pub{};
  std::vector<std::uint8_t> secret(crypto_sign_SECRETKEYBYTES);
  TRAIL_ASSERT(crypto_sign_seed_keypair(pub.data(), secret.data(), seed.data()) == 0);
  sodium_memzero(secret.data(), secret.size());
  TRAIL_TRY(publish_private_file(dir / kSigningPublicFile, pub, true));
  spdlog::warn("key directory {} had no checkpoint signing key; made {}", dir.string(),
               kSigningSeedFile);
  return Status::ok();
}

void wrap_aad(std::uint32_t key_id, std::string_view project, std::vector<std::uint8_t>& aad) {
  static constexpr std::string_view kLabel = "trail/data-key/v1";
  aad.assign(kLabel.begin(), kLabel.end());
  std::uint8_t id[4];
  put_u32_be(id, key_id);
  aad.insert(aad.end(), id, id + 4);
  aad.insert(aad.end(), project.begin(), project.end());
}

}  // namespace

namespace {
// libsodium must be initialised before sodium_malloc; sodium_init is idempotent and thread-safe.
std::uint8_t* secure_alloc(std::size_t size) {
  TRAIL_ASSERT(sodium_init() >= 0);
  return static_cast<std::uint8_t*>(sodium_malloc(size));
}
}  // namespace

SecretKey::SecretKey() : bytes_(secure_alloc(size())) {
  TRAIL_ASSERT(bytes_ != nullptr);
  sodium_memzero(bytes_, size());
}

SecretKey::~SecretKey() { sodium_free(bytes_); }

Status KeyRing::create(const fs::path& dir, const std::string& key_name) {
  TRAIL_ASSERT(sodium_init() >= 0);
  if (key_name.size() > kKeyNameBytesMax || !note::is_valid_key_name(key_name)) {
    return Status::error(Code::kInvalid, "key name must be 1 to 128 bytes of UTF-8 without "
                                         "spaces, control characters or '+'");
  }
  std::error_code ec;
  if (fs::exists(dir / kKekFile, ec) || fs::exists(dir / kSigningSeedFile, ec)) {
    return Status::error(Code::kConflict,
                         "key directory " + dir.string() + " already holds keys; refusing to "
                         "overwrite them");
  }
  fs::create_directories(dir, ec);
  if (ec) return Status::error(Code::kIo, "cannot create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) {
    return Status::error(Code::kIo, "cannot chmod " + dir.string() + ": " + std::strerror(errno));
  }
  SecretKey kek;
  randombytes_buf(kek.data(), kek.size());
  SecretKey seed;
  randombytes_buf(seed.data(), seed.size());
  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> pub{};
  std::vector<std::uint8_t> secret(crypto_sign_SECRETKEYBYTES);
  TRAIL_ASSERT(crypto_sign_seed_keypair(pub.data(), secret.data(), seed.data()) == 0);
  sodium_memzero(secret.data(), secret.size());

  TRAIL_TRY(write_private_file(dir / kKekFile, {kek.data(), kek.size()}));
  TRAIL_TRY(write_private_file(dir / kSigningSeedFile, {seed.data(), seed.size()}));
  TRAIL_TRY(write_private_file(dir / kSigningPublicFile, pub));
  TRAIL_TRY(write_private_file(dir / kKeyNameFile, as_bytes(key_name)));
  return Status::ok();
}

Result<std::shared_ptr<const KeyRing>> KeyRing::load(const fs::path& dir,
                                                     std::string_view signer_name) {
  TRAIL_ASSERT(sodium_init() >= 0);
  std::shared_ptr<KeyRing> ring{new KeyRing()};
  if (const char* hex = std::getenv(kKekEnvVar); hex != nullptr) {
    if (!from_hex(hex, {ring->kek_.data(), ring->kek_.size()})) {
      return Status::error(Code::kInvalid, std::string(kKekEnvVar) + " must be 64 hex digits");
    }
  } else {
    TRAIL_TRY(read_private_file(dir / kKekFile, {ring->kek_.data(), ring->kek_.size()}));
  }
  TRAIL_TRY(ensure_signing_key(dir));
  SecretKey seed;
  static_assert(SecretKey::size() == note::kSeedBytes);
  TRAIL_TRY(read_private_file(dir / kSigningSeedFile, {seed.data(), seed.size()}));

  std::ifstream name_in(dir / kKeyNameFile);
  std::getline(name_in, ring->key_name_);
  if (ring->key_name_.empty()) {
    return Status::error(Code::kInvalid, (dir / kKeyNameFile).string() + " is missing or empty");
  }
  const std::string name = signer_name.empty() ? ring->key_name_ : std::string(signer_name);
  Result<note::Signer> signer = note::Signer::from_seed(name, {seed.data(), seed.size()});
  if (!signer.is_ok()) {
    return Status::error(Code::kInvalid, "checkpoint signer name: " + signer.status().detail());
  }
  ring->signer_.emplace(std::move(signer).value());
  TRAIL_ASSERT(ring->signer_.has_value());
  return std::shared_ptr<const KeyRing>{std::move(ring)};
}

WrappedKey KeyRing::wrap(std::uint32_t key_id, std::string_view project,
                         const SecretKey& key) const {
  WrappedKey out;
  randombytes_buf(out.nonce.data(), out.nonce.size());
  std::vector<std::uint8_t> aad;
  wrap_aad(key_id, project, aad);
  unsigned long long sealed_size = 0;
  TRAIL_ASSERT(crypto_aead_xchacha20poly1305_ietf_encrypt(
                   out.sealed.data(), &sealed_size, key.data(), key.size(), aad.data(),
                   aad.size(), nullptr, out.nonce.data(), kek_.data()) == 0);
  TRAIL_ASSERT(sealed_size == out.sealed.size());
  return out;
}

Status KeyRing::unwrap(std::uint32_t key_id, std::string_view project, const WrappedKey& wrapped,
                       SecretKey& out) const {
  std::vector<std::uint8_t> aad;
  wrap_aad(key_id, project, aad);
  unsigned long long size = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          out.data(), &size, nullptr, wrapped.sealed.data(), wrapped.sealed.size(), aad.data(),
          aad.size(), wrapped.nonce.data(), kek_.data()) != 0) {
    return Status::error(Code::kCorrupt, "data key " + std::to_string(key_id) +
                                             " does not open with this key-encryption key");
  }
  TRAIL_ASSERT(size == out.size());
  return Status::ok();
}

Digest KeyRing::kek_check() const {
  static constexpr std::string_view kLabel = "trail/kek-check/v1";
  Digest out{};
  TRAIL_ASSERT(crypto_generichash(out.data(), out.size(),
                                  reinterpret_cast<const unsigned char*>(kLabel.data()),
                                  kLabel.size(), kek_.data(), kek_.size()) == 0);
  return out;
}

}  // namespace trail::ledger
