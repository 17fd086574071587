// `orderflow-bank`: the orderflow command line with one more domain registered, as a user
// of the framework would build a binary for theirs: the standard kinds, the order domain
// (still the default) and the bank domain (graphs that say `domain: bank`).
#include "server/cli.h"
#include "server/standard.h"
#include "tests/bank/bank_domain.h"

int main(int argc, char** argv) {
  orderflow::graph::KindRegistry registry;
  orderflow::register_standard_kinds(registry);
  registry.add_domain(orderflow::bank::bank_domain());
  return orderflow::run_cli(argc, argv, registry);
}
