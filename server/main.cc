// `orderflow`: the headless server and graph tools (see server/cli.h) with the standard
// kinds and the order domain.
#include "server/cli.h"
#include "server/standard.h"

int main(int argc, char** argv) {
  orderflow::graph::KindRegistry registry;
  orderflow::register_standard_kinds(registry);
  return orderflow::run_cli(argc, argv, registry);
}
