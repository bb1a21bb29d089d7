#include "server/systemd_notifier.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace hvmm {

void SystemdNotifier::Ready(const std::string& status,
                            std::function<void()> alive) {
  sd_notify(0, absl::StrCat("READY=1\nSTATUS=", status).c_str());
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  watchdog_usec_ = usec;
  watchdog_ = std::thread([this, alive = std::move(alive)] {
    // Half the period, as sd_watchdog_enabled(3) advises; at least 1 ms
    // (a WatchdogSec below 2 ms cannot be met and would only spin).
    const absl::Duration period =
        std::max(absl::Microseconds(watchdog_usec_ / 2), absl::Milliseconds(1));
    do {
      alive();  // Blocks if the daemon is wedged: then no ping.
      sd_notify(0, "WATCHDOG=1");
    } while (!stop_.WaitForNotificationWithTimeout(period));
  });
}

void SystemdNotifier::Stopping(const std::string& status) {
  sd_notify(0, absl::StrCat("STOPPING=1\nSTATUS=", status).c_str());
}

void SystemdNotifier::StopWatchdog() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (watchdog_.joinable()) watchdog_.join();
}

}  // namespace hvmm
