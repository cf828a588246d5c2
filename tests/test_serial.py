"""One serialisation for the result classes (vitprobe.serial): to_dict gives the recorded
fields and the derived summaries; JSON written by results.save_json reads back through
from_dict to equal objects, arrays as numpy (a null inside one as NaN), an unrecorded field
(eigenvectors) left out."""

import json

import numpy as np

from vitprobe import results
from vitprobe.landscape import Surface
from vitprobe.solvers import Density, EigenResult, TraceResult
from vitprobe.spectra import Spectrum
from vitprobe.stats import Interval


def roundtrip(obj):
    return type(obj).from_dict(json.loads(results.to_json(obj.to_dict())))


def test_each_result_class_reads_back_what_it_wrote():
    e = EigenResult(np.array([3.0, -1.0]), np.array([1e-4, 2e-4]), np.array([True, True]),
                    num_hvps=19, seconds=0.5, method="lanczos", which="LM", tol=1e-3, seed=2,
                    layout="lanczos", eigenvectors=np.eye(4)[:, :2])
    d = e.to_dict()
    assert "eigenvectors" not in d and d["num_hvps"] == 19 and d["timings"] is None
    back = roundtrip(e)
    assert back.eigenvectors is None and back.converged.dtype == bool
    np.testing.assert_array_equal(back.eigenvalues, [3.0, -1.0])
    assert (back.method, back.which, back.tol, back.seed) == ("lanczos", "LM", 1e-3, 2)

    t = TraceResult(estimate=12.5, stderr=0.25, num_hvps=64, num_probes=64,
                    method="hutch++", seed=0)
    assert roundtrip(t) == t

    dens = Density(np.array([[1.0, 2.0]]), np.array([[0.25, 0.75]]), num_hvps=2, seed=1)
    back = roundtrip(dens)
    np.testing.assert_array_equal(back.weights, [[0.25, 0.75]])
    assert back.mean() == 0.25 * 1 + 0.75 * 2

    iv = Interval(0.142, 0.048, 0.236, n=3)
    assert roundtrip(iv) == iv and iv.to_dict()["method"] == "bootstrap"


def test_a_spectrum_records_nep_and_ape_and_reads_its_nulls_back_as_nan():
    s = Spectrum(np.array([[2.0, -1.0], [4.0, np.nan]]), np.array([[1e-4, 1e-4], [1e-4, np.inf]]),
                 np.array([[True, True], [True, False]]), num_hvps=40, seconds=1.0,
                 batch_size=16, weight_decay=0.05)
    d = s.to_dict()
    assert d["nep"] == 1 / 3 and d["ape"] == 3.0  # of the three finite eigenvalues
    text = results.to_json(d).replace("NaN", "null")  # as a strict JSON writer has it
    back = Spectrum.from_dict(json.loads(text))
    assert np.isnan(back.eigenvalues[1, 1]) and back.eigenvalues[0, 1] == -1.0
    assert back.nep() == 1 / 3 and back.converged.tolist() == [[True, True], [True, False]]


def test_a_surface_reads_back_its_coordinates_as_a_tuple_of_arrays():
    s = Surface((np.linspace(-1, 1, 3), np.linspace(-1, 1, 2)), np.arange(6.0).reshape(3, 2),
                np.full((3, 2), 0.5), l2_coef=0.05, seconds=2.0, meta={"mode": "eval"})
    back = roundtrip(s)
    assert isinstance(back.coords, tuple) and len(back.coords) == 2
    np.testing.assert_array_equal(back.coords[0], [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(back.loss, s.loss)
    assert back.meta == {"mode": "eval"} and back.l2_coef == 0.05
