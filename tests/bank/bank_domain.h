// The bank domain (tests/bank/bank.proto) behind the framework's Domain interface: accounts
// ("acct-ID") and transfers ("xfer-ID") whose process manager debits, credits, refunds and
// settles them. Proof that the generic node kinds, HTTP API and stores run a domain they
// were not written for. Stateless and thread-safe.
#pragma once

#include <memory>

#include "graph/domain.h"

namespace orderflow::bank {

std::shared_ptr<const Domain> bank_domain();  // its name is "bank"

}  // namespace orderflow::bank
