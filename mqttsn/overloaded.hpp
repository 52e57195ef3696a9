// The usual visitor helper: overloaded{[](const A&){...}, [](const B&){...}} for std::visit.
#pragma once

namespace mqttsn {

template <typename... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <typename... Fs>
overloaded(Fs...) -> overloaded<Fs...>;  // clang 14 lacks aggregate deduction

}  // namespace mqttsn
