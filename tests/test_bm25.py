import math

import pytest

from rag.retrieval.bm25 import BM25Encoder, term_id, tokenize

pytestmark = pytest.mark.unit


def test_tokenize_lowercases_stems_and_drops_stop_words():
    assert tokenize("The Routers are RESTARTING") == ["router", "restart"]


def test_term_ids_are_stable_across_calls():
    assert term_id("router") == term_id("router") != term_id("routers")


def test_document_values_follow_lucene_saturation():
    enc = BM25Encoder(k1=1.2, b=0.75)
    vec = enc.encode_document("vpn vpn token", avgdl=6.0)
    values = dict(zip(vec.indices, vec.values))
    dl = 3
    norm = 1.2 * (1 - 0.75 + 0.75 * dl / 6.0)
    assert math.isclose(values[term_id("vpn")], 2 * 2.2 / (2 + norm), rel_tol=1e-9)
    assert math.isclose(values[term_id("token")], 1 * 2.2 / (1 + norm), rel_tol=1e-9)


def test_query_has_one_per_unique_term():
    vec = BM25Encoder().encode_query("reset reset the VPN token")
    assert sorted(vec.indices) == sorted({term_id("reset"), term_id("vpn"), term_id("token")})
    assert vec.values == [1.0, 1.0, 1.0]


@pytest.mark.unit
def test_times_and_decimals_are_terms_beside_their_digit_runs():
    assert tokenize("The 08:35 bus costs 4.50 euros.") == [
        "08:35",
        "08",
        "35",
        "bus",
        "cost",
        "4.50",
        "4",
        "50",
        "euro",
    ]
    # A sentence's closing full stop after a number is not a decimal.
    assert tokenize("Bay 3. Doors") == ["bay", "3", "door"]
