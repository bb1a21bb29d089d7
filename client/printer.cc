#include "client/printer.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace hvmm {
namespace ctl {
namespace {

std::string Seconds(const google::protobuf::Duration& d) {
  return absl::StrFormat("%.6fs", d.seconds() + d.nanos() / 1e9);
}

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                          absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

}  // namespace

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(header_);
  for (const auto& r : rows_) measure(r);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      if (i + 1 == row.size()) {
        absl::StrAppend(&line, row[i]);
      } else {
        absl::StrAppend(&line, row[i],
                        std::string(width[i] - row[i].size() + 2, ' '));
      }
    }
    out << line << "\n";
  };
  print(header_);
  for (const auto& r : rows_) print(r);
}

void PrintJson(const google::protobuf::Message& m, std::ostream& out) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(m, &json, options);
  out << json;
  if (json.empty() || json.back() != '\n') out << "\n";
}

std::string PolicyName(v1::FlushPolicy p) {
  switch (p) {
    case v1::FLUSH_POLICY_IPI: return "ipi";
    case v1::FLUSH_POLICY_ASSISTED_UNSAFE: return "assisted-unsafe";
    case v1::FLUSH_POLICY_ASSISTED_FORCE_IPI: return "assisted+force-ipi";
    case v1::FLUSH_POLICY_ASSISTED_RCU: return "assisted+rcu";
    default: return "unspecified";
  }
}

bool ParsePolicyName(const std::string& name, v1::FlushPolicy* out) {
  for (v1::FlushPolicy p :
       {v1::FLUSH_POLICY_IPI, v1::FLUSH_POLICY_ASSISTED_UNSAFE,
        v1::FLUSH_POLICY_ASSISTED_FORCE_IPI, v1::FLUSH_POLICY_ASSISTED_RCU}) {
    if (name == PolicyName(p)) {
      *out = p;
      return true;
    }
  }
  return false;
}

std::string PageTypeName(v1::PageType t) {
  switch (t) {
    case v1::PAGE_TYPE_NONE: return "none";
    case v1::PAGE_TYPE_WRITABLE: return "writable";
    case v1::PAGE_TYPE_L1: return "l1";
    case v1::PAGE_TYPE_L2: return "l2";
    case v1::PAGE_TYPE_L3: return "l3";
    case v1::PAGE_TYPE_L4: return "l4";
    default: return "?";
  }
}

std::string Hex(uint64_t v) { return absl::StrCat("0x", absl::Hex(v)); }

bool ParseNumber(const std::string& text, uint64_t* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const bool hex = text.size() > 2 && text[0] == '0' &&
                   (text[1] == 'x' || text[1] == 'X');
  const unsigned long long v =
      std::strtoull(hex ? text.c_str() + 2 : text.c_str(), &end, hex ? 16 : 10);
  if (errno != 0 || end == nullptr || *end != '\0' || text[0] == '-') {
    return false;
  }
  *out = v;
  return true;
}

void PrintDomains(const std::vector<v1::Domain>& domains, std::ostream& out) {
  Table t({"ID", "NAME", "VCPUS", "PAGES", "MAX", "POLICY", "ROOT",
           "WORKLOAD", "CREATED"});
  for (const v1::Domain& d : domains) {
    t.AddRow({absl::StrCat(d.domain_id()), d.name(), absl::StrCat(d.vcpus()),
              absl::StrCat(d.tot_pages()), absl::StrCat(d.max_pages()),
              PolicyName(d.policy()),
              d.has_root_mfn() ? Hex(d.root_mfn()) : "-",
              d.workload_running() ? "running" : "-",
              Time(d.create_time())});
  }
  t.Print(out);
}

void PrintFrame(const v1::Frame& f, std::ostream& out) {
  Table t({"MFN", "OWNER", "TYPE", "COUNT", "TYPE_COUNT", "PINNED",
           "VALIDATED", "RETIRING", "GENERATION"});
  t.AddRow({Hex(f.mfn()), absl::StrCat(f.owner_domain_id()),
            PageTypeName(f.type()), absl::StrCat(f.count()),
            absl::StrCat(f.type_count()), f.pinned() ? "yes" : "no",
            f.validated() ? "yes" : "no", f.retiring() ? "yes" : "no",
            absl::StrCat(f.generation())});
  t.Print(out);
}

void PrintTranslation(const v1::TranslateResponse& r, std::ostream& out) {
  Table t({"OUTCOME", "MFN", "PHYSICAL", "WRITABLE", "FAULT_LEVEL", "PCPU",
           "TABLES"});
  std::vector<std::string> tables;
  for (uint64_t m : r.table_mfns()) tables.push_back(Hex(m));
  const bool ok = r.outcome() == v1::TRANSLATE_OUTCOME_OK;
  const std::string outcome(absl::StripPrefix(
      v1::TranslateOutcome_Name(r.outcome()), "TRANSLATE_OUTCOME_"));
  t.AddRow({outcome, ok ? Hex(r.mfn()) : "-",
            ok ? Hex(r.physical_address()) : "-",
            ok ? (r.writable() ? "yes" : "no") : "-",
            r.fault_level() == v1::TABLE_LEVEL_UNSPECIFIED
                ? "-"
                : absl::StrCat("l", static_cast<int>(r.fault_level())),
            absl::StrCat(r.pcpu()), absl::StrJoin(tables, ",")});
  t.Print(out);
}

void PrintStats(const v1::GetStatsResponse& s, std::ostream& out) {
  Table t({"STAT", "VALUE"});
  auto row = [&](const std::string& k, const std::string& v) {
    t.AddRow({k, v});
  };
  auto n = [](uint64_t v) { return absl::StrCat(v); };
  row("uptime", Seconds(s.uptime()));
  row("pcpus", n(s.pcpus()));
  row("domains", n(s.domains()));
  row("default_policy", PolicyName(s.default_policy()));
  row("frames.total", n(s.frames().total()));
  row("frames.free", n(s.frames().free()));
  row("frames.none", n(s.frames().none()));
  row("frames.writable", n(s.frames().writable()));
  row("frames.page_tables", n(s.frames().page_tables()));
  row("frames.pending_free", n(s.frames().pending_free()));
  row("flushes.ipi", n(s.flushes().ipi_flushes()));
  row("flushes.assisted", n(s.flushes().assisted_flushes()));
  row("ipis_sent", n(s.flushes().ipis_sent()));
  row("forced_ipis", n(s.flushes().forced_ipis()));
  row("grace_periods", n(s.grace().grace_periods()));
  row("grace_latency_p50", Seconds(s.grace().latency_p50()));
  row("grace_latency_p99", Seconds(s.grace().latency_p99()));
  row("pending_deferred_frees", n(s.grace().pending_deferred_frees()));
  row("accesses", n(s.walks().accesses()));
  row("walks", n(s.walks().walks()));
  row("tlb_hit_ratio", absl::StrFormat("%.4f", s.walks().tlb_hit_ratio()));
  row("faults", n(s.walks().faults()));
  row("violations.existence", n(s.violations().existence()));
  row("violations.coherence", n(s.violations().coherence()));
  if (s.has_domain()) {
    const std::string p = absl::StrCat("domain.", s.domain().domain().domain_id());
    row(p + ".tot_pages", n(s.domain().domain().tot_pages()));
    row(p + ".policy", PolicyName(s.domain().domain().policy()));
    row(p + ".pending_deferred_frees", n(s.domain().pending_deferred_frees()));
    row(p + ".violations.existence", n(s.domain().violations().existence()));
    row(p + ".violations.coherence", n(s.domain().violations().coherence()));
  }
  t.Print(out);
}

void PrintEvent(const v1::Event& e, std::ostream& out) {
  const std::string kind(
      absl::StripPrefix(v1::EventKind_Name(e.kind()), "EVENT_KIND_"));
  std::string what;
  switch (e.payload_case()) {
    case v1::Event::kDomainCreated:
      what = absl::StrCat("domain ", e.domain_created().domain().domain_id(),
                          " '", e.domain_created().domain().name(), "' ",
                          PolicyName(e.domain_created().domain().policy()));
      break;
    case v1::Event::kDomainDestroyed:
      what = absl::StrCat("domain ", e.domain_destroyed().domain_id(), " '",
                          e.domain_destroyed().name(), "'");
      break;
    case v1::Event::kPolicyChanged:
      what = absl::StrCat("domain ", e.policy_changed().domain_id(), " ",
                          PolicyName(e.policy_changed().previous_policy()),
                          " -> ", PolicyName(e.policy_changed().policy()));
      break;
    case v1::Event::kGracePeriods:
      what = absl::StrCat(e.grace_periods().completed(), " completed, max ",
                          Seconds(e.grace_periods().max_latency()));
      break;
    case v1::Event::kFlushBatches:
      what = absl::StrCat("ipi ", e.flush_batches().ipi_batches(),
                          " assisted ", e.flush_batches().assisted_batches(),
                          " requests ", e.flush_batches().requests());
      break;
    case v1::Event::kSafetyViolation: {
      const std::string k(absl::StripPrefix(
          v1::ViolationKind_Name(e.safety_violation().kind()),
          "VIOLATION_KIND_"));
      what = absl::StrCat("domain ", e.safety_violation().domain_id(), " ", k,
                          " mfn ", Hex(e.safety_violation().mfn()), " under ",
                          PolicyName(e.safety_violation().policy()));
      break;
    }
    case v1::Event::kWorkloadChanged:
      what = absl::StrCat("domain ", e.workload_changed().domain_id());
      break;
    default:
      break;
  }
  out << e.revision() << "  " << Time(e.time()) << "  " << kind
      << (what.empty() ? "" : "  ") << what << "\n";
}

}  // namespace ctl
}  // namespace hvmm
