#include "ledger/key_ring.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

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

Status write_private_file(const fs::path& path, ByteView bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::error(Code::kIo, "cannot create " + path.string() + ": " + std::strerror(errno));
  }
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
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return Status::error(Code::kIo, "cannot sync " + path.string() + ": " + std::strerror(errno));
  }
  return Status::ok();
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
  if (key_name.empty() || key_name.size() > kKeyNameBytesMax ||
      key_name.find_first_of(" \t\r\n+") != std::string::npos) {
    return Status::error(Code::kInvalid,
                         "key name must be 1 to 128 characters without spaces or '+'");
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

Result<std::shared_ptr<const KeyRing>> KeyRing::load(const fs::path& dir) {
  TRAIL_ASSERT(sodium_init() >= 0);
  std::shared_ptr<KeyRing> ring{new KeyRing()};
  if (const char* hex = std::getenv(kKekEnvVar); hex != nullptr) {
    if (!from_hex(hex, {ring->kek_.data(), ring->kek_.size()})) {
      return Status::error(Code::kInvalid, std::string(kKekEnvVar) + " must be 64 hex digits");
    }
  } else {
    TRAIL_TRY(read_private_file(dir / kKekFile, {ring->kek_.data(), ring->kek_.size()}));
  }
  TRAIL_TRY(read_private_file(dir / kSigningSeedFile,
                              {ring->signing_seed_.data(), ring->signing_seed_.size()}));
  std::vector<std::uint8_t> secret(crypto_sign_SECRETKEYBYTES);
  TRAIL_ASSERT(crypto_sign_seed_keypair(ring->signing_public_.data(), secret.data(),
                                        ring->signing_seed_.data()) == 0);
  sodium_memzero(secret.data(), secret.size());

  std::ifstream name_in(dir / kKeyNameFile);
  std::getline(name_in, ring->key_name_);
  if (ring->key_name_.empty()) {
    return Status::error(Code::kInvalid, (dir / kKeyNameFile).string() + " is missing or empty");
  }
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
