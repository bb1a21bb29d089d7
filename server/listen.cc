#include "server/listen.h"

#include <algorithm>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "mm/mm_errors.h"

namespace hvmm {
namespace {

absl::Status SocketDirUnsafe(const std::string& dir, absl::string_view why) {
  return WithErrorReason(
      absl::PermissionDeniedError(
          absl::StrCat("socket directory ", dir, " is unsafe: ", why)),
      "SOCKET_DIR_UNSAFE");
}

std::string Errno() { return std::strerror(errno); }

}  // namespace

std::string ListenAddress::GrpcUri() const {
  if (kind == Kind::kUnix) return absl::StrCat("unix:", path);
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

bool ListenAddress::IsLocal() const {
  if (kind == Kind::kUnix) return true;
  if (host == "localhost" || host == "::1") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  return false;
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  ListenAddress a;
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "unix:")) {
    if (rest.empty() || rest[0] != '/') {
      return MalformedArgumentError(absl::StrCat(
          "listen address '", text, "': a Unix socket path must be absolute"));
    }
    if (rest.size() > 107) {  // sockaddr_un.sun_path: 108 bytes with NUL.
      return MalformedArgumentError(absl::StrCat(
          "listen address '", text, "': the socket path is longer than 107 "
          "bytes"));
    }
    a.kind = ListenAddress::Kind::kUnix;
    // Lexically normal, so that two spellings of one path compare equal.
    a.path =
        std::filesystem::path(std::string(rest)).lexically_normal().string();
    if (absl::EndsWith(a.path, ".lock") || a.path.back() == '/') {
      return MalformedArgumentError(absl::StrCat(
          "listen address '", text, "': a socket path may not end in '/' "
          "or '.lock' (the name of a socket's lock file)"));
    }
    return a;
  }
  if (absl::ConsumePrefix(&rest, "tcp:")) {
    a.kind = ListenAddress::Kind::kTcp;
    absl::string_view host, port;
    if (absl::ConsumePrefix(&rest, "[")) {
      const size_t close = rest.find("]:");
      if (close == absl::string_view::npos) {
        return MalformedArgumentError(absl::StrCat(
            "listen address '", text, "': expected tcp:[IPv6]:PORT"));
      }
      host = rest.substr(0, close);
      port = rest.substr(close + 2);
    } else {
      const size_t colon = rest.rfind(':');
      if (colon == absl::string_view::npos ||
          rest.substr(0, colon).find(':') != absl::string_view::npos) {
        return MalformedArgumentError(absl::StrCat(
            "listen address '", text, "': expected tcp:HOST:PORT"));
      }
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    }
    int p = -1;
    // Digits only: SimpleAtoi would also take " 80" or "+80".
    const bool digits =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(),
                    [](char c) { return c >= '0' && c <= '9'; });
    if (host.empty() || !digits || !absl::SimpleAtoi(port, &p) || p < 0 ||
        p > 65535) {
      return MalformedArgumentError(absl::StrCat(
          "listen address '", text, "': expected tcp:HOST:PORT, PORT 0..65535"));
    }
    a.host = std::string(host);
    a.port = p;
    return a;
  }
  return MalformedArgumentError(absl::StrCat(
      "listen address '", text, "': expected unix:/PATH or tcp:HOST:PORT"));
}

std::string DefaultSocketDir() {
  if (geteuid() == 0) return "/run/hvmm";
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg == '/') {
    return absl::StrCat(xdg, "/hvmm");
  }
  return absl::StrCat("/tmp/hvmm-", geteuid());
}

std::string DefaultSocketPath() {
  return absl::StrCat(DefaultSocketDir(), "/hvmm.sock");
}

std::string ReadOnlySocketPathFor(absl::string_view path) {
  absl::string_view stem = path;
  absl::ConsumeSuffix(&stem, ".sock");
  return absl::StrCat(stem, "-ro.sock");
}

SocketLock::~SocketLock() { close(fd_); }

absl::StatusOr<std::unique_ptr<SocketLock>> PrepareUnixSocket(
    const std::string& path) {
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty()) {
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create socket directory ", dir, ": ", Errno()));
    }
    struct stat st;
    if (lstat(dir.c_str(), &st) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot stat socket directory ", dir, ": ", Errno()));
    }
    if (!S_ISDIR(st.st_mode)) return SocketDirUnsafe(dir, "not a directory");
    if (st.st_uid != geteuid()) {
      return SocketDirUnsafe(dir, absl::StrCat("owned by uid ", st.st_uid,
                                               ", not ", geteuid()));
    }
    // Never chmod an existing directory: it may be shared (/tmp). Refuse.
    if ((st.st_mode & 077) != 0) {
      return SocketDirUnsafe(
          dir, absl::StrFormat("mode %04o lets other users in; use a "
                               "directory of mode 0700 (hvmmd creates one "
                               "if it is missing)",
                               st.st_mode & 07777));
    }
  }
  const std::string lock_path = absl::StrCat(path, ".lock");
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open lock file ", lock_path, ": ", Errno()));
  }
  auto lock = std::make_unique<SocketLock>(fd);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    (void)!pread(fd, pid, sizeof(pid) - 1, 0);
    return WithErrorReason(
        absl::FailedPreconditionError(absl::StrCat(
            "another hvmmd (pid ", absl::StripAsciiWhitespace(pid),
            ") is serving ", path, "; stop it first")),
        "SOCKET_IN_USE");
  }
  const std::string me = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 || pwrite(fd, me.data(), me.size(), 0) < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write lock file ", lock_path, ": ", Errno()));
  }
  // The lock is ours, so whatever is at the path is stale.
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot remove stale socket ", path, ": ", Errno()));
  }
  return lock;
}

ScopedSocketUmask::ScopedSocketUmask() : previous_(umask(0177)) {}
ScopedSocketUmask::~ScopedSocketUmask() { umask(previous_); }

}  // namespace hvmm
