#include "gateway/extension.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace gateway {

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> candidates() {
  if (const char* file = std::getenv("MQTTSN_GATEWAY_EXT"); file != nullptr && *file != '\0') return {fs::path(file)};
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {fs::path(extension_file)};
  const auto dir = exe.parent_path();
  return {dir.parent_path() / "lib" / "mqttsn-gateway" / extension_file, dir / extension_file};
}

const extension_api* loaded_api = nullptr;

// Loads the module once; `needed_by` begins the error message ("" when the caller names it). (on the io thread or at startup: no lock needed, the daemon has one).
const extension_api& load(const char* needed_by) {
  if (loaded_api != nullptr) return *loaded_api;
  std::string why;
  for (const auto& file : candidates()) {
    std::error_code ec;
    if (!fs::exists(file, ec)) {
      why += (why.empty() ? "" : "; ") + file.string() + ": not found";
      continue;
    }
    void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* e = ::dlerror();
      why += (why.empty() ? "" : "; ") + std::string(e != nullptr ? e : file.string() + ": cannot load");
      continue;
    }
    using entry_fn = const extension_api* (*)();
    auto entry = reinterpret_cast<entry_fn>(::dlsym(handle, extension_entry));
    const extension_api* api = entry != nullptr ? entry() : nullptr;
    if (api == nullptr || api->abi != extension_abi) {
      why += (why.empty() ? "" : "; ") + file.string() + ": not a module of this build of mqttsn-gateway";
      ::dlclose(handle);
      continue;
    }
    loaded_api = api;  // never unloaded: its code runs until exit
    return *api;
  }
  throw std::invalid_argument(std::string(needed_by) + (*needed_by != '\0' ? " " : "") + "needs the module " +
                              extension_file + " (" + why + ")");
}

}  // namespace

std::shared_ptr<tls_client> make_tls_client(const tls_settings& tls) {
  return load("TLS (ssl:// broker)").make_tls_client(tls);
}

std::unique_ptr<upstream> make_paho_upstream(boost::asio::io_context& io, paho_settings settings) {
  return load("upstream-client paho").make_paho_upstream(io, std::move(settings));
}

std::unique_ptr<session_store> open_session_store(const std::string& path) {
  return load("").open_session_store(path);
}

bool extension_loaded() noexcept { return loaded_api != nullptr; }

}  // namespace gateway
