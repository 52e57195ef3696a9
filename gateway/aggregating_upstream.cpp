#include "gateway/aggregating_upstream.hpp"
#include "gateway/extension.hpp"
#include "gateway/native_upstream.hpp"
#include "mqttsn/overloaded.hpp"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace gateway {

namespace {

paho_settings with_kept_session(paho_settings s) {
  s.gateway_clean_session = false;
  return s;
}

mqttsn::qos lower(mqttsn::qos a, mqttsn::qos b) {
  return static_cast<int>(a) <= static_cast<int>(b) ? a : b;
}

const std::string shared_id{gateway_connection};

std::unique_ptr<upstream> make_shared_connection(boost::asio::io_context& io, const paho_settings& s) {
  if (s.client == upstream_client::paho) return make_paho_upstream(io, s);
  return std::make_unique<native_upstream>(io, s);
}

}  // namespace

aggregating_upstream::aggregating_upstream(boost::asio::io_context& io, paho_settings settings)
    : io_(io),
      settings_(with_kept_session(std::move(settings))),
      shared_(make_shared_connection(io, settings_)),
      anchor_(std::make_shared<anchor>(anchor{this})) {}

aggregating_upstream::~aggregating_upstream() {
  anchor_.reset();
  shared_.reset();  // stops the connection if stop() was not called
}

void aggregating_upstream::start(event_handler on_event) {
  on_event_ = std::move(on_event);
  std::weak_ptr<anchor> w = anchor_;
  // The shared connection calls this on the io thread.
  shared_->start([w](const std::string& id, mqttsn::upstream_event e) {
    if (auto a = w.lock()) a->self->on_shared(id, std::move(e));
  });
  spdlog::debug("upstream: aggregating mode: all clients share the connection '{}' ({} client)",
                settings_.gateway_client_id, settings_.client == upstream_client::paho ? "Paho" : "native");
}

void aggregating_upstream::stop(std::chrono::milliseconds timeout) { shared_->stop(timeout); }

// ---- intents ----

void aggregating_upstream::restore_subscriptions(const std::string& client_id,
                                                 const std::vector<std::pair<std::string, mqttsn::qos>>& filters) {
  if (client_id.empty()) return;
  for (const auto& [filter, q] : filters) table_.hold(client_id, filter, q);
}

void aggregating_upstream::connect(const std::string& client_id, const mqttsn::upstream_connect& c) {
  if (client_id.empty()) {
    spdlog::warn("upstream: connect with an empty client id ignored (reserved for the gateway connection)");
    return;
  }
  if (c.clean_session) drop_subscriptions(client_id);
  auto& st = clients_[client_id];
  st.answered = false;
  st.clean = c.clean_session;
  st.session_present = !c.clean_session && table_.holds(client_id);
  st.generation = next_generation_++;
  spdlog::debug("upstream: client '{}' attaches to the shared connection (clean session {}, {} filters kept)",
                client_id, c.clean_session, table_.filters_of(client_id).size());
  if (!up_) return;  // answered when the shared connection is (back) up
  std::weak_ptr<anchor> w = anchor_;
  boost::asio::post(io_, [w, client_id, gen = st.generation] {
    if (auto a = w.lock()) a->self->answer_connect(client_id, gen);
  });
}

void aggregating_upstream::answer_connect(const std::string& client_id, std::uint64_t generation) {
  auto it = clients_.find(client_id);
  if (it == clients_.end() || it->second.generation != generation || it->second.answered || !up_) return;
  it->second.answered = true;
  emit(client_id, mqttsn::upstream_connected{it->second.session_present});
}

void aggregating_upstream::publish(const std::string& client_id, const mqttsn::upstream_publish& p) {
  if (p.ref == 0) {
    shared_->publish(shared_id, p);
    return;
  }
  const auto ref = next_ref();
  request r;
  r.what = request::kind::publish;
  r.client = client_id;
  r.client_ref = p.ref;
  r.pub = p;
  r.pub.ref = ref;
  send(ref, requests_.emplace(ref, std::move(r)).first->second);
}

void aggregating_upstream::subscribe(const std::string& client_id, const mqttsn::upstream_subscribe& s) {
  const auto upstream_q = table_.subscribe(client_id, s.filter, s.q);
  const auto ref = next_ref();
  request r;
  r.what = request::kind::subscribe;
  r.client = client_id;
  r.client_ref = s.ref;
  r.filter = s.filter;
  r.requested = s.q;
  r.upstream_q = upstream_q;
  ++stats_.subscribes_sent;
  send(ref, requests_.emplace(ref, std::move(r)).first->second);
}

void aggregating_upstream::unsubscribe(const std::string& client_id, const mqttsn::upstream_unsubscribe& u) {
  if (!table_.unsubscribe(client_id, u.filter)) {
    post_event(client_id, mqttsn::upstream_unsubscribed{u.ref});  // others still hold it (or nobody did)
    return;
  }
  const auto ref = next_ref();
  request r;
  r.what = request::kind::unsubscribe;
  r.client = client_id;
  r.client_ref = u.ref;
  r.filter = u.filter;
  ++stats_.unsubscribes_sent;
  send(ref, requests_.emplace(ref, std::move(r)).first->second);
}

void aggregating_upstream::disconnect(const std::string& client_id) {
  if (client_id.empty()) return;  // the shared connection stays up until stop()
  auto it = clients_.find(client_id);
  if (it == clients_.end()) return;
  const bool clean = it->second.clean;
  clients_.erase(it);
  for (auto r = requests_.begin(); r != requests_.end();) {
    if (r->second.client != client_id) {
      ++r;
    } else if (r->second.what == request::kind::publish) {
      r = requests_.erase(r);  // its answer is dropped when it comes
    } else {
      r->second.forgotten = true;  // the table still learns of a refusal
      ++r;
    }
  }
  if (clean) drop_subscriptions(client_id);
  spdlog::debug("upstream: client '{}' detached ({})", client_id,
                clean ? "clean session: its subscriptions are gone" : "its subscriptions are kept");
}

void aggregating_upstream::forget(const std::string& client_id) {
  if (client_id.empty()) return;
  disconnect(client_id);  // nothing when it was already detached offline
  drop_subscriptions(client_id);
  spdlog::debug("upstream: client '{}' forgotten: its kept subscriptions are gone", client_id);
}

void aggregating_upstream::drop_subscriptions(const std::string& client_id) {
  for (auto& filter : table_.remove_client(client_id)) {
    const auto ref = next_ref();
    request r;
    r.what = request::kind::cleanup;
    r.filter = std::move(filter);
    ++stats_.unsubscribes_sent;
    send(ref, requests_.emplace(ref, std::move(r)).first->second);
  }
}

// ---- the shared connection ----

std::uint32_t aggregating_upstream::next_ref() {
  do {
    ++last_ref_;
  } while (last_ref_ == 0 || requests_.contains(last_ref_));
  return last_ref_;
}

void aggregating_upstream::send(std::uint32_t ref, const request& r) {
  switch (r.what) {
    case request::kind::publish: shared_->publish(shared_id, r.pub); return;
    case request::kind::subscribe:
    case request::kind::restore:
      shared_->subscribe(shared_id, mqttsn::upstream_subscribe{ref, r.filter, r.upstream_q});
      return;
    case request::kind::unsubscribe:
    case request::kind::cleanup: shared_->unsubscribe(shared_id, mqttsn::upstream_unsubscribe{ref, r.filter}); return;
  }
}

void aggregating_upstream::on_shared(const std::string& id, mqttsn::upstream_event e) {
  if (!id.empty()) return;  // only the shared connection is ever used
  std::visit(mqttsn::overloaded{
                 [&](const mqttsn::upstream_connected& c) { on_shared_connected(c.session_present); },
                 [&](const mqttsn::upstream_lost&) { on_shared_lost(); },
                 [&](const mqttsn::upstream_refused&) {},  // the gateway connection retries on its own
                 [&](const mqttsn::upstream_published& p) { on_published(p.ref); },
                 [&](const mqttsn::upstream_subscribed& s) { on_subscribed(s); },
                 [&](const mqttsn::upstream_unsubscribed& u) { on_unsubscribed(u.ref); },
                 [&](mqttsn::upstream_message& m) { on_message(std::move(m)); },
             },
             e);
}

void aggregating_upstream::on_shared_connected(bool session_present) {
  up_ = true;
  if (!session_present) {
    // The shared connection dropped every request of the old session: resend what the clients still wait
    // for and SUBSCRIBE every other filter of the table (a pending SUBSCRIBE covers its filter).
    auto old = std::move(requests_);
    requests_.clear();
    std::set<std::string> pending_filters;
    for (const auto& [ref, r] : old) {
      if (r.what == request::kind::subscribe && !r.forgotten) pending_filters.insert(r.filter);
    }
    const auto filters = table_.restore();
    std::map<std::string, mqttsn::qos> restored_q;
    for (const auto& f : filters) restored_q[f.filter] = f.q;
    // What the clients still wait for, in its original order (an UNSUBSCRIBE after the SUBSCRIBE
    // it undoes) and with its refs; then every other filter of the table.
    std::size_t resent = 0;
    for (auto& [ref, r] : old) {
      if (r.forgotten || r.what == request::kind::restore || r.what == request::kind::cleanup) continue;
      if (r.what == request::kind::subscribe) {
        if (auto q = restored_q.find(r.filter); q != restored_q.end()) r.upstream_q = q->second;
      }
      send(ref, requests_.emplace(ref, std::move(r)).first->second);
      ++resent;
    }
    for (const auto& f : filters) {
      if (pending_filters.contains(f.filter)) continue;
      request r;
      r.what = request::kind::restore;
      r.filter = f.filter;
      r.upstream_q = f.q;
      const auto ref = next_ref();
      send(ref, requests_.emplace(ref, std::move(r)).first->second);
    }
    if (!filters.empty() || resent > 0) {
      ++stats_.restores;
      spdlog::info("upstream: the broker had lost the shared session: {} subscriptions restored, {} requests resent",
                   filters.size(), resent);
    }
  }
  emit(shared_id, mqttsn::upstream_connected{session_present});
  // Every attached client: connected, with its subscriptions where they were.
  std::vector<std::pair<std::string, bool>> answers;
  for (auto& [id, st] : clients_) {
    if (st.answered) continue;
    st.answered = true;
    answers.emplace_back(id, st.session_present);
  }
  for (auto& [id, sp] : answers) emit(id, mqttsn::upstream_connected{sp});
}

void aggregating_upstream::on_shared_lost() {
  up_ = false;
  emit(shared_id, mqttsn::upstream_lost{});
  std::vector<std::string> lost;
  for (auto& [id, st] : clients_) {
    if (!st.answered) continue;
    st.answered = false;
    st.session_present = true;  // its subscriptions are in the table: kept or restored by us
    lost.push_back(id);
  }
  for (const auto& id : lost) emit(id, mqttsn::upstream_lost{});
}

void aggregating_upstream::on_message(mqttsn::upstream_message m) {
  ++stats_.messages_in;
  const auto to = table_.route(m.topic, m.q, m.retain);
  if (to.empty()) {
    ++stats_.unrouted;
    spdlog::debug("upstream: '{}' matches no client's subscription; dropped", m.topic);
    return;
  }
  for (std::size_t i = 0; i < to.size(); ++i) {
    ++stats_.deliveries;
    mqttsn::upstream_message copy{m.topic, i + 1 == to.size() ? std::move(m.payload) : m.payload, to[i].q, m.retain};
    emit(to[i].client, std::move(copy));
  }
}

void aggregating_upstream::on_published(std::uint32_t ref) {
  auto it = requests_.find(ref);
  if (it == requests_.end() || it->second.what != request::kind::publish) return;
  auto r = std::move(it->second);
  requests_.erase(it);
  emit(r.client, mqttsn::upstream_published{r.client_ref});
}

void aggregating_upstream::on_subscribed(const mqttsn::upstream_subscribed& s) {
  auto it = requests_.find(s.ref);
  if (it == requests_.end()) return;
  auto r = std::move(it->second);
  requests_.erase(it);
  // The retained copies that follow answer this SUBSCRIBE (mqttsn/fanout.hpp).
  if (r.what == request::kind::restore || r.what == request::kind::subscribe) table_.subscribed(r.filter, s.granted);
  if (r.what == request::kind::restore) {
    if (!s.granted) spdlog::warn("upstream: the broker refused to restore the subscription '{}'", r.filter);
    return;
  }
  if (r.what != request::kind::subscribe) return;
  if (!s.granted) {
    spdlog::debug("upstream: the broker refused '{}' for client '{}'", r.filter, r.client);
    if (table_.granted(r.client, r.filter)) table_.unsubscribe(r.client, r.filter);
  }
  if (r.forgotten) return;
  std::optional<mqttsn::qos> granted;
  if (s.granted) granted = lower(r.requested, *s.granted);
  emit(r.client, mqttsn::upstream_subscribed{r.client_ref, granted});
}

void aggregating_upstream::on_unsubscribed(std::uint32_t ref) {
  auto it = requests_.find(ref);
  if (it == requests_.end()) return;
  auto r = std::move(it->second);
  requests_.erase(it);
  if (r.what == request::kind::unsubscribe && !r.forgotten) {
    emit(r.client, mqttsn::upstream_unsubscribed{r.client_ref});
  }
}

// ---- events ----

void aggregating_upstream::emit(const std::string& client_id, mqttsn::upstream_event e) {
  if (on_event_) on_event_(client_id, std::move(e));
}

void aggregating_upstream::post_event(const std::string& client_id, mqttsn::upstream_event e) {
  std::weak_ptr<anchor> w = anchor_;
  boost::asio::post(io_, [w, client_id, e = std::move(e)]() mutable {
    if (auto a = w.lock()) a->self->emit(client_id, std::move(e));
  });
}

}  // namespace gateway
