"""The benchmarks' goal lines: what they decide from the numbers measured."""

from benchmarks.rnn import GOAL_LINEAR, linearity


def test_time_linear_in_t_is_read_off_the_pairs_of_runs_that_took_turns():
    # per_step[H, T] = (unrollgrad per step, numpy per step, median unrollgrad / numpy of the pairs)
    # At 32 units the medians over all processes say unrollgrad grew 1.5x as much as numpy
    # (one slow process at T = 1000), the pairs 1.3 / 1.2: the goal follows the pairs.
    per_step = {(32, 100): (1.0, 1.0, 1.2), (32, 1000): (1.5, 1.0, 1.3),
                (128, 100): (2.0, 1.6, 1.25), (128, 1000): (2.2, 1.7, 1.3)}
    line = linearity(per_step, 100, 1000)
    assert "32 hidden: unrollgrad +50%, numpy +0% (ratio of the growths 1.08 by the pairs, 1.50 by the medians)" in line
    assert ("128 hidden: unrollgrad +10%, numpy +6% "
            "(ratio of the growths 1.04 by the pairs, 1.04 by the medians)") in line
    assert line.endswith(f"-> PASS (by the pairs: at most {GOAL_LINEAR}x numpy's growth, whose work per step is fixed)")
    # one size past the limit by the pairs fails the goal, whatever the medians say
    per_step[128, 1000] = (2.0, 1.6, 1.25 * (GOAL_LINEAR + 0.01))
    line = linearity(per_step, 100, 1000)
    assert f"ratio of the growths {GOAL_LINEAR + 0.01:.2f} by the pairs, 1.00 by the medians" in line
    assert "-> MISS" in line


def test_the_processor_line_names_the_family_model_and_avx512(tmp_path):
    import platform

    from benchmarks._common import cpu_model

    entry = ("processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
             "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 {extra}\n\n")
    cpuinfo = tmp_path / "cpuinfo"
    # two processors: only the first one's entry is read (the second has AVX-512)
    cpuinfo.write_text(entry.format(n=0, extra="fma") + entry.format(n=1, extra="avx512f"))
    assert cpu_model(str(cpuinfo)) == "AMD EPYC, family 25 model 1, no AVX-512"
    cpuinfo.write_text(entry.format(n=0, extra="avx512f avx512bw"))
    assert cpu_model(str(cpuinfo)) == "AMD EPYC, family 25 model 1, AVX-512"
    cpuinfo.write_text("model name\t: Some CPU\n")  # what the system does not say is left out
    assert cpu_model(str(cpuinfo)) == "Some CPU"
    # no file: the platform's name, or "processor unknown"
    assert cpu_model(str(tmp_path / "missing")) == (platform.processor() or "processor unknown")


def test_the_drawing_benchmark_draws_every_mode_past_the_size_limits():
    # the limits are for drawings meant for dot: the benchmark, which times building the
    # text alone, stopped at its first graph when max_edges was added
    from benchmarks.viz import MODES, measure

    rows = measure(7, repeats=1)
    assert [row[3] for row in rows] == list(MODES)
    assert all(row[:3] == ["T=7", "1,168", "2,088"] for row in rows)
