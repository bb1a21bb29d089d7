// SystemdNotifier: hvmmd's side of a Type=notify unit (sd_notify(3)).
//
//   READY=1      once every listener serves (with a STATUS= line);
//   STOPPING=1   when the graceful shutdown begins;
//   WATCHDOG=1   every half WatchdogSec, from a thread that first checks
//                that the daemon still answers (the `alive` check: it takes
//                the locks a wedged daemon would hold). A daemon whose check
//                blocks stops pinging, and systemd restarts it.
// Outside systemd (no NOTIFY_SOCKET) every call does nothing.
//
// Thread-safety: Ready(), Stopping() and Stop() from the controlling
// thread.
#ifndef HVMM_SERVER_SYSTEMD_NOTIFIER_H_
#define HVMM_SERVER_SYSTEMD_NOTIFIER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"

namespace hvmm {

class SystemdNotifier {
 public:
  SystemdNotifier() = default;
  ~SystemdNotifier() { StopWatchdog(); }
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  // READY=1 and STATUS=`status`; starts the watchdog thread if the unit
  // has WatchdogSec (WATCHDOG_USEC), calling `alive` before each ping.
  void Ready(const std::string& status, std::function<void()> alive);
  // STOPPING=1 and STATUS=`status`; the watchdog keeps pinging until
  // StopWatchdog() (a drain may outlast WatchdogSec).
  void Stopping(const std::string& status);
  void StopWatchdog();

  // The watchdog period in microseconds (0: none), from WATCHDOG_USEC.
  uint64_t watchdog_usec() const { return watchdog_usec_; }

 private:
  uint64_t watchdog_usec_ = 0;
  absl::Notification stop_;
  std::thread watchdog_;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_SYSTEMD_NOTIFIER_H_
