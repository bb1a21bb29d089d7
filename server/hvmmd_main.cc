// hvmmd: flags, logging and signals around a Daemon (daemon.h). Nothing
// else happens here.
//
// Flags may be spelled with dashes or underscores (--allow-unsafe and
// --allow_unsafe are one flag). SIGTERM and SIGINT start the graceful
// shutdown; the exit code is 0 if the final audit passed, 1 otherwise,
// and 2 for a start-up error (Abseil's flag parser itself exits 1 on a
// malformed flag, before hvmmd runs).
//
// --demo runs the built-in demo (server/demo.h) on the daemon, live on its
// sockets and metrics, then shuts down: exit 0, 1 if a safe policy broke a
// promise (or the final audit failed), 2 if it could not run.
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "flush/flush_policy.h"
#include "mm/mm_errors.h"
#include "server/daemon.h"
#include "server/demo.h"
#include "server/systemd_notifier.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(uint64_t, frames, uint64_t{1} << 18,
          "frames in the host pool (4 KiB each; the default is 1 GiB)");
ABSL_FLAG(int, pcpus, 4, "simulated physical CPUs (1..256)");
ABSL_FLAG(std::string, policy, "assisted+rcu",
          "default flush policy: ipi, assisted+force-ipi, assisted+rcu, or "
          "assisted-unsafe (needs --allow-unsafe)");
ABSL_FLAG(bool, allow_unsafe, false,
          "allow the assisted-unsafe policy (the seed bug, for demos)");
ABSL_FLAG(std::string, listen, "",
          "unix:/PATH or tcp:HOST:PORT (default: unix:$XDG_RUNTIME_DIR/hvmm/"
          "hvmm.sock, or /run/hvmm/hvmm.sock as root)");
ABSL_FLAG(std::string, read_only_listen, "",
          "read-only address (default: the -ro.sock beside a Unix --listen; "
          "'none' disables it)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate for TCP");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for TCP");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA: clients must present a certificate it signed");
ABSL_FLAG(int, shutdown_grace_seconds, 10,
          "seconds in-flight calls get to finish on SIGTERM");
ABSL_FLAG(int, event_history, 4096, "events kept for WatchEvents resumes");
ABSL_FLAG(int, bookmark_seconds, 10,
          "an idle WatchEvents stream gets a bookmark this often");
ABSL_FLAG(uint64_t, hypercall_ns, 2000, "simulated assisted-flush latency");
ABSL_FLAG(bool, demo, false,
          "run the built-in demo: the same churn under each flush policy in "
          "turn, a line a second, then a comparison table; exits 0, or 1 if "
          "a safe policy broke a promise");
ABSL_FLAG(int, demo_seconds, 7, "demo: seconds per policy (1..600)");
ABSL_FLAG(std::string, demo_policy, "",
          "demo: run only this policy (default: ipi, assisted+force-ipi, "
          "assisted+rcu, assisted-unsafe)");
ABSL_FLAG(uint64_t, demo_walk_delay_ns, 2000,
          "demo: a guest walker spins this long at each table it reaches, "
          "so that seconds show the window an assisted flush leaves");
ABSL_FLAG(std::string, metrics_addr, "127.0.0.1:9464",
          "Prometheus /metrics on HOST:PORT (port 0: a free port, logged); "
          "'none' serves no metrics");

namespace {

// "--allow-unsafe[=x]" -> "--allow_unsafe[=x]": Abseil flag names cannot
// hold dashes.
std::vector<char*> NormalizeFlagNames(int argc, char** argv,
                                      std::vector<std::string>* storage) {
  storage->reserve(argc);
  std::vector<char*> out;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      for (size_t j = 2; j < end; ++j) {
        if (arg[j] == '-') arg[j] = '_';
      }
    }
    storage->push_back(std::move(arg));
    out.push_back(storage->back().data());
  }
  return out;
}

// Runs the demo on the daemon's Host while a thread waits for SIGINT or
// SIGTERM to cut it short. Returns hvmmd's exit code: 0, or 1 if a safe
// policy broke a promise, or 2 if the demo could not run.
int RunDemo(hvmm::Daemon& daemon, const hvmm::DemoOptions& options,
            const sigset_t& signals) {
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    const timespec tick = {0, 200 * 1000 * 1000};
    while (!done.load()) {
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        spdlog::info("interrupted: ending the demo");
        stop.store(true);
        return;
      }
    }
  });
  spdlog::info("demo: each policy runs {} s; hvmmctl --addr {} and curl "
               "http://{}/metrics work meanwhile; Ctrl-C ends it",
               absl::ToInt64Seconds(options.per_policy), daemon.address(),
               daemon.metrics_address().empty() ? "(metrics off)"
                                                : daemon.metrics_address());
  hvmm::Demo demo(&daemon.host(), options);
  std::vector<hvmm::DemoRow> rows;
  const absl::Status ran = demo.Run(stop, &rows);
  done.store(true);
  waiter.join();
  hvmm::Demo::PrintSummary(stdout, rows);
  if (!ran.ok()) {
    spdlog::error("demo: {}", std::string(ran.message()));
    return 2;
  }
  if (!hvmm::Demo::SafePoliciesKeptPromises(rows)) {
    spdlog::error("demo: a safe policy broke a promise");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // First of all, so that no SIGTERM/SIGINT is lost (a background job of a
  // non-interactive shell starts with SIGINT ignored; a blocked signal is
  // kept pending even so). Every thread inherits this mask; the main
  // thread (or the demo's waiter) takes the signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::SetProgramUsageMessage(
      "hvmmd: the hypervisor memory-management daemon.\n"
      "  hvmmd [--listen=unix:/PATH|tcp:HOST:PORT] [--policy=P] ...\n"
      "Exit codes: 0 clean shutdown (audit passed), 1 the final audit "
      "failed, 2 start-up error.");
  std::vector<std::string> storage;
  std::vector<char*> args = NormalizeFlagNames(argc, argv, &storage);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());

  umask(077);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ hvmmd: %v");

  absl::StatusOr<hvmm::Policy> policy =
      hvmm::ParsePolicy(absl::GetFlag(FLAGS_policy));
  if (!policy.ok()) {
    spdlog::error("--policy: {}", std::string(policy.status().message()));
    return 2;
  }
  // Values the flag types allow but hvmmd does not: refused, never clamped.
  const char* bad = nullptr;
  if (absl::GetFlag(FLAGS_event_history) < 1) bad = "--event-history must be >= 1";
  if (absl::GetFlag(FLAGS_bookmark_seconds) < 1) {
    bad = "--bookmark-seconds must be >= 1";
  }
  if (absl::GetFlag(FLAGS_shutdown_grace_seconds) < 0) {
    bad = "--shutdown-grace-seconds must be >= 0";
  }
  if (bad != nullptr) {
    spdlog::error("{}", bad);
    return 2;
  }
  hvmm::DaemonOptions options;
  options.host.frames = absl::GetFlag(FLAGS_frames);
  options.host.pcpus = absl::GetFlag(FLAGS_pcpus);
  options.host.policy = *policy;
  options.host.allow_unsafe = absl::GetFlag(FLAGS_allow_unsafe);
  options.host.hypercall_ns = absl::GetFlag(FLAGS_hypercall_ns);
  options.listen = absl::GetFlag(FLAGS_listen);
  options.read_only_listen = absl::GetFlag(FLAGS_read_only_listen);
  options.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  options.shutdown_grace =
      absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds));
  options.event_history = static_cast<size_t>(absl::GetFlag(FLAGS_event_history));
  options.bookmark_interval = absl::Seconds(absl::GetFlag(FLAGS_bookmark_seconds));
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_addr);

  hvmm::DemoOptions demo;
  const bool demo_mode = absl::GetFlag(FLAGS_demo);
  if (demo_mode) {
    const int seconds = absl::GetFlag(FLAGS_demo_seconds);
    if (seconds < 1 || seconds > 600) {
      spdlog::error("--demo-seconds must be in [1, 600]");
      return 2;
    }
    demo.per_policy = absl::Seconds(seconds);
    if (!absl::GetFlag(FLAGS_demo_policy).empty()) {
      absl::StatusOr<hvmm::Policy> only =
          hvmm::ParsePolicy(absl::GetFlag(FLAGS_demo_policy));
      if (!only.ok()) {
        spdlog::error("--demo-policy: {}", std::string(only.status().message()));
        return 2;
      }
      demo.policies = {*only};
    }
    // The demo reproduces the bug on its own domains: it allows
    // assisted-unsafe (the default policy stays as given).
    for (hvmm::Policy p : demo.policies) {
      if (p == hvmm::Policy::kAssistedUnsafe) options.host.allow_unsafe = true;
    }
    options.host.walk_delay_ns = absl::GetFlag(FLAGS_demo_walk_delay_ns);
  } else if (!absl::GetFlag(FLAGS_demo_policy).empty()) {
    spdlog::error("--demo-policy needs --demo");
    return 2;
  }

  absl::StatusOr<std::unique_ptr<hvmm::Daemon>> daemon =
      hvmm::Daemon::Start(options);
  if (!daemon.ok()) {
    const std::string reason = hvmm::ErrorReason(daemon.status());
    spdlog::error("cannot start: {}{}", std::string(daemon.status().message()),
                  reason.empty() ? "" : absl::StrCat(" [", reason, "]"));
    return 2;
  }
  spdlog::info("serving hvmm.v1 on {}", (*daemon)->address());
  if (!(*daemon)->read_only_address().empty()) {
    spdlog::info("read-only on {}", (*daemon)->read_only_address());
  }
  if (!(*daemon)->metrics_address().empty()) {
    spdlog::info("metrics on http://{}/metrics", (*daemon)->metrics_address());
  }
  spdlog::info("{} frames, {} pCPUs, default policy {}{}", options.host.frames,
               options.host.pcpus, hvmm::PolicyName(options.host.policy),
               options.host.allow_unsafe ? " (assisted-unsafe allowed)" : "");

  // systemd (Type=notify): ready, and a watchdog whose check takes the
  // mm's domain-list lock and the deferred retirer's lock.
  hvmm::SystemdNotifier systemd;
  hvmm::Host* host = &(*daemon)->host();
  systemd.Ready(absl::StrCat("serving on ", (*daemon)->address()), [host] {
    (void)host->mm().ListDomains();
    (void)host->engine().deferred_retirer().pending_frames();
  });
  if (systemd.watchdog_usec() != 0) {
    spdlog::info("systemd watchdog: a ping every {} ms",
                 std::max<uint64_t>(systemd.watchdog_usec() / 2000, 1));
  }

  int exit_code = 0;
  if (demo_mode) {
    exit_code = RunDemo(**daemon, demo, signals);
  } else {
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("{}: shutting down (grace {}s)", strsignal(signal),
                 absl::GetFlag(FLAGS_shutdown_grace_seconds));
  }
  systemd.Stopping("draining: in-flight calls finish, frees drain, audit");
  const absl::Status audit = (*daemon)->Shutdown();
  systemd.StopWatchdog();
  if (!audit.ok()) {
    spdlog::error("final audit failed: {}", std::string(audit.message()));
    return 1;
  }
  spdlog::info("clean shutdown: workloads stopped, frees drained, audit "
               "passed");
  return exit_code;
}
