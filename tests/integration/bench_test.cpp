// sbox bench against the local provider, through the built binary: exports that hold every sample, and a
// Ctrl-C in the middle of a run on a terminal that removes every sandbox. (Against the fake E2B: remote/.)
#include <doctest/doctest.h>

#include "harness.hpp"
#include "terminal.hpp"

using namespace it;

// Also run as an unprivileged user (run-unprivileged.sh): bench's exec path joins sandboxes from a helper.
TEST_SUITE("rootless-capable") {

    TEST_CASE(
        "bench -p local: the table, and exports in JSON, CSV, Markdown and SVG that hold every sample") {
        World w;
        TempDir out;
        const std::string json = out.path() + "/b.json", csv = out.path() + "/b.csv",
                          md = out.path() + "/b.md", svg = out.path() + "/b.svg";
        Result r = w.sbox({"bench", "-p", "local", "-n", "5", "--warmup", "1", "--exec-repeat", "2",
                           "--command", "echo hello; echo to-stderr >&2", "--export-json", json,
                           "--export-csv", csv, "--export-markdown", md, "--export-svg", svg});
        INFO(describe(r));
        REQUIRE(r.status == 0);
        CHECK(r.out.find("local: 5 of 5 sandboxes ok (100%)") != std::string::npos);
        for (const char* row : {"create", "first exec", "exec", "kill"})
            CHECK(r.out.find(std::string("  ") + row + " ") != std::string::npos);
        CHECK(r.out.find("time to first exec") == std::string::npos); // the chart is for terminals only
        CHECK(r.err.find("sbox bench: local; 5 rounds after 1 warmup") != std::string::npos);

        auto j = nlohmann::json::parse(read_file(json));
        REQUIRE(j["samples"].size() == 6);
        for (const auto& s : j["samples"]) {
            INFO(s.dump());
            CHECK(s["ok"] == true);
            CHECK(s["silent"] == false);
            CHECK(s["exec_ms"].size() == 2);
            CHECK(s["first_exec_ms"].get<double>() > s["create_ms"].get<double>());
            CHECK(s["sandbox"].is_string());
        }
        CHECK(j["summary"]["local"]["phases"]["first_exec"]["n"] == 5);
        CHECK(j["summary"]["local"]["phases"]["exec"]["n"] == 10);
        CHECK(j["providers"]["local"]["engine"].get<std::string>().starts_with("sbox "));
        CHECK(j["settings"]["command"] == "echo hello; echo to-stderr >&2");

        auto csv_lines = lines(read_file(csv));
        CHECK(csv_lines.size() == 1 + 6 * (1 + 1 + 2 + 1));
        CHECK(read_file(md).find("| local | first exec | 5 | 100% |") != std::string::npos);
        std::string svg_text = read_file(svg);
        CHECK(svg_text.find("data-provider=\"local\"") != std::string::npos);
        CHECK(svg_text.rfind("</svg>\n") == svg_text.size() - 7);

        // Nothing is left: no sandbox, no state, no mount.
        CHECK(w.ls().empty());
        CHECK(w.leftovers().empty());
        CHECK(w.mounts().empty());
    }

    TEST_CASE(
        "bench: Ctrl-C on a terminal stops the run, removes every sandbox and shows what was measured") {
        World w;
        // A long run, on a terminal: the progress line shows each round, and the chart comes with the table.
        PtySession s = PtySession::sbox(w, {"bench", "-p", "local", "-n", "100000", "--concurrency", "3"});
        INFO("screen:\n" << s.screen());
        REQUIRE(s.expect("round 2/100000"));
        s.type("\x03");
        Result r = s.finish();
        INFO(describe(r));
        CHECK(r.status == 1);
        CHECK(r.out.find("interrupted by SIGINT") != std::string::npos);
        CHECK(r.out.find("sandboxes ok") != std::string::npos);
        CHECK(r.out.find("time to first exec") != std::string::npos); // the chart
        CHECK(eventually([&] { return w.ls().empty() && w.leftovers().empty(); }));
        CHECK(w.processes().empty());
    }

} // TEST_SUITE
