#include "server/http_response.h"

#include <fmt/format.h>

#include "bridgepool/binary.h"

namespace bridgepool::server {

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(to_json_text(body), "application/json");  // binary values as base64
}

std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  for (unsigned char ch : text) {
    if (out.size() >= max) return out + "...";
    if (ch >= 0x20 && ch < 0x7f) {
      out += static_cast<char>(ch);
    } else {
      out += fmt::format("\\x{:02x}", ch);
    }
  }
  return out;
}

}  // namespace bridgepool::server
