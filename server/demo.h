// Demo: the story of hvmm, told by the daemon it runs in (hvmmd --demo).
//
// The same scenario runs under each flush policy in turn, on the daemon's
// own Host, so gRPC and /metrics show it live: several domains with mapped
// memory and guest workloads on every pCPU (slow walkers: a walk delay
// makes seconds show the window an assisted flush leaves), while updater
// threads churn them (guest/churn.h: map/unmap, retypes of former page
// tables, destroy and recreate, ...). Every second one line reports the
// phase; at the end a table compares the policies, and one sentence per
// promise says which policies kept it.
//
// The unsafe phase (assisted-unsafe: the seed bug, reproduced) runs on
// past its time until the oracle has caught the bug, for at most
// `unsafe_extension` more: on a loaded machine a few seconds may hold too
// few walks to show it, and a demo of the bug that shows nothing would
// tell the wrong story. The table says when a phase ran on.
//
// Thread-safety: Run() from one thread; `stop` from any.
#ifndef HVMM_SERVER_DEMO_H_
#define HVMM_SERVER_DEMO_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flush/flush_policy.h"
#include "server/host.h"

namespace hvmm {

struct DemoOptions {
  // Run in this order.
  std::vector<Policy> policies = {Policy::kIpi, Policy::kAssistedForceIpi,
                                  Policy::kAssistedRcu,
                                  Policy::kAssistedUnsafe};
  absl::Duration per_policy = absl::Seconds(7);
  absl::Duration unsafe_extension = absl::Seconds(30);
  int domains = 3;
  int updaters = 2;
  uint32_t vcpus = 2;
  uint64_t window_pages = 2048;
  std::FILE* out = stdout;
};

// One policy's phase, measured.
struct DemoRow {
  Policy policy = Policy::kIpi;
  double seconds = 0;
  uint64_t updates = 0;  // Churn operations.
  double updates_per_second = 0;
  uint64_t flush_p99_ns = 0;  // Backend calls, both backends.
  uint64_t ipis_sent = 0, forced_ipis = 0;
  uint64_t grace_periods = 0;
  uint64_t pending_peak = 0;              // Frames waiting for a grace period.
  uint64_t existence = 0, coherence = 0;  // Violations.
  bool cut_short = false;                 // Stopped (Ctrl-C) before its time.
  bool ran_on = false;  // The unsafe phase's extension was used.
  // Why the phase ended before its time, if a churn operation failed (a
  // client destroyed a demo domain under it, the pool ran dry); "" if not.
  std::string aborted;
  uint64_t violations() const { return existence + coherence; }
};

class Demo {
 public:
  // REQUIRES: `host` allows assisted-unsafe if it is among the policies.
  Demo(Host* host, DemoOptions options) : host_(host), options_(options) {}

  // Runs the phases, printing a line a second, and appends each one's row
  // to `rows` (a phase `stop` cut short included unless it ran under a
  // second; later ones are not run). A phase whose churn fails (a client
  // destroyed its domains, the pool ran dry) ends early with the reason in
  // its row, and the next one runs. Errors, with the rows so far kept,
  // only if a phase cannot be set up or torn down (assisted-unsafe not
  // allowed, too few frames for its domains).
  absl::Status Run(const std::atomic<bool>& stop, std::vector<DemoRow>* rows);

  // The comparison table and the promise sentences.
  static void PrintSummary(std::FILE* out, const std::vector<DemoRow>& rows);
  // Whether every safe policy's phase had zero violations.
  static bool SafePoliciesKeptPromises(const std::vector<DemoRow>& rows);

 private:
  absl::StatusOr<DemoRow> RunPhase(Policy policy,
                                   const std::atomic<bool>& stop);

  Host* const host_;
  const DemoOptions options_;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_DEMO_H_
