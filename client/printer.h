// Output of hvmmctl: an aligned table with a header, or JSON from
// protobuf's JSON printer (-o json).
//
// Thread-compatible.
#ifndef HVMM_CLIENT_PRINTER_H_
#define HVMM_CLIENT_PRINTER_H_

#include <ostream>
#include <string>
#include <vector>

#include "google/protobuf/message.h"
#include "hvmm/v1/hvmm.pb.h"

namespace hvmm {
namespace ctl {

enum class OutputFormat { kTable, kJson };

// Rows under a header, each column as wide as its widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header)
      : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// One message as JSON (lowerCamelCase names, enums by name, every field
// printed, indented), with a newline.
void PrintJson(const google::protobuf::Message& m, std::ostream& out);

// Short names used in tables and accepted on the command line.
std::string PolicyName(v1::FlushPolicy p);  // "assisted+rcu"
bool ParsePolicyName(const std::string& name, v1::FlushPolicy* out);
std::string PageTypeName(v1::PageType t);  // "l1", "writable", ...
std::string Hex(uint64_t v);               // "0x1a"
// Parses decimal or 0x-prefixed hex.
bool ParseNumber(const std::string& text, uint64_t* out);

// Tables of the API's messages.
void PrintDomains(const std::vector<v1::Domain>& domains, std::ostream& out);
void PrintFrame(const v1::Frame& f, std::ostream& out);
void PrintTranslation(const v1::TranslateResponse& t, std::ostream& out);
void PrintStats(const v1::GetStatsResponse& s, std::ostream& out);
void PrintEvent(const v1::Event& e, std::ostream& out);

}  // namespace ctl
}  // namespace hvmm

#endif  // HVMM_CLIENT_PRINTER_H_
