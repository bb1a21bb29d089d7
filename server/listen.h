// Where hvmmd listens, and the safe set-up of its Unix sockets.
//
// Addresses: "unix:/abs/path" or "tcp:HOST:PORT" (HOST may be a bracketed
// IPv6 literal; PORT 0 picks a free port). TCP in plaintext is allowed on
// loopback only; any other host needs TLS.
//
// A Unix socket lives in a directory of mode 0700 owned by the daemon's
// user, and is created with mode 0600 by binding under umask 0177 (never a
// chmod after bind: that would leave a window). gRPC unlinks whatever is at
// the path before binding, so a second daemon would silently steal the
// first one's socket: before binding, the daemon takes an exclusive flock
// on "<path>.lock" and keeps it for its life. A second daemon fails to get
// it and exits; a stale socket whose lock is free is replaced.
//
// Thread-safety: the functions are thread-compatible; PrepareUnixSocket and
// the bind are done by the daemon's start-up thread.
#ifndef HVMM_SERVER_LISTEN_H_
#define HVMM_SERVER_LISTEN_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hvmm {

struct ListenAddress {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix.
  std::string host;  // kTcp, without brackets.
  int port = 0;      // kTcp.

  // The URI gRPC binds or dials: "unix:PATH" or "HOST:PORT" ("[v6]:PORT").
  std::string GrpcUri() const;
  // Whether a TCP host is a loopback address (127.0.0.0/8, ::1,
  // "localhost"); Unix sockets count as local too.
  bool IsLocal() const;
};

// kInvalidArgument (reason MALFORMED_ARGUMENT) for anything else than the
// forms of the file comment.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text);

// $XDG_RUNTIME_DIR/hvmm, or /run/hvmm as root; /tmp/hvmm-UID as a last
// resort (a user without a runtime directory).
std::string DefaultSocketDir();
std::string DefaultSocketPath();          // DefaultSocketDir()/hvmm.sock
std::string ReadOnlySocketPathFor(absl::string_view path);  // ...-ro.sock

// The exclusive lock on a socket path; released on destruction.
class SocketLock {
 public:
  explicit SocketLock(int fd) : fd_(fd) {}
  ~SocketLock();
  SocketLock(const SocketLock&) = delete;
  SocketLock& operator=(const SocketLock&) = delete;

 private:
  const int fd_;
};

// Creates (0700) or checks the socket's directory (ours, mode 0700: an
// existing directory is never chmod-ed, since it may be shared), takes the
// lock beside
// the socket, and removes a stale socket. kFailedPrecondition (reason
// SOCKET_IN_USE) if another daemon holds the lock; kPermissionDenied
// (SOCKET_DIR_UNSAFE) if the directory belongs to another user or is not
// a directory.
absl::StatusOr<std::unique_ptr<SocketLock>> PrepareUnixSocket(
    const std::string& path);

// Sets the umask for binding a socket of mode 0600 and restores the
// previous one on destruction.
class ScopedSocketUmask {
 public:
  ScopedSocketUmask();
  ~ScopedSocketUmask();
  ScopedSocketUmask(const ScopedSocketUmask&) = delete;
  ScopedSocketUmask& operator=(const ScopedSocketUmask&) = delete;

 private:
  unsigned previous_;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_LISTEN_H_
