"""Hashmatch's rules without I/O: thresholds, rotations, the negative bank, vPDQ shares, which
hashes of a submission are banked, bank names, the plain list format, opaque ids, and the
decisions that build the bank's events."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest
from ncii_contracts.hashmatch import MatchFound
from ncii_contracts.intake import SubmittedHash
from ncii_hashmatch import domain
from ncii_hashmatch.domain import BankSettings, Candidate, Frame
from ncii_hashmatch.http.bodies import HashIn, Lookup, Sighting
from ncii_hashmatch.tokens import Tokens
from pydantic import ValidationError

from tests.support.imports import top_level_packages_loaded

H = "a" * 64


def pdq(
    value: str = H, quality: int | None = 90, dihedral: list[str] | None = None
) -> SubmittedHash:
    return SubmittedHash(
        algorithm="pdq", value=value, media="image", quality=quality, dihedral=dihedral
    )


def hex_at(distance: int, base: str = "0" * 64) -> str:
    """A hash exactly ``distance`` bits from ``base``."""
    return f"{int(base, 16) ^ ((1 << distance) - 1):064x}"


# -- thresholds and rotations ----------------------------------------------------------------------


def test_the_threshold_is_inclusive_31_matches_and_32_does_not() -> None:
    assert domain.pdq_within(31, 31)
    assert not domain.pdq_within(32, 31)
    assert domain.pdq_within(0, 0) and not domain.pdq_within(1, 0)


def test_a_bank_admits_rotated_hits_only_with_dihedral_matching_on_and_nothing_when_disabled() -> (
    None
):
    plain, rotated = Candidate(0, 1, 10), Candidate(0, 1, 10, rotated=True)
    assert domain.admit(plain, "pdq", BankSettings()) and domain.admit(
        rotated, "pdq", BankSettings()
    )
    off = BankSettings(match_dihedral=False)
    assert domain.admit(plain, "pdq", off) and not domain.admit(rotated, "pdq", off)
    disabled = BankSettings(enabled=False)
    assert not domain.admit(plain, "pdq", disabled)
    assert not domain.admit(Candidate(0, 1, 0), "md5", disabled)
    assert domain.admit(Candidate(0, 1, 0), "md5", BankSettings())


def test_best_matches_takes_the_closest_admitted_hit_and_a_plain_one_on_a_tie() -> None:
    cands = [
        Candidate(0, 7, 40),  # plain, but over the threshold
        Candidate(0, 7, 12, rotated=True),
        Candidate(0, 8, 5, rotated=True),
        Candidate(0, 8, 5),
        Candidate(1, 9, 3),  # entry 9 is no longer live: no settings
    ]
    settings = {7: BankSettings(), 8: BankSettings()}
    algorithms = {7: "pdq", 8: "pdq"}
    best = domain.best_matches(cands, algorithms, settings)
    assert best == [Candidate(0, 8, 5), Candidate(0, 7, 12, rotated=True)]
    no_rotations = {7: BankSettings(match_dihedral=False), 8: BankSettings(match_dihedral=False)}
    assert domain.best_matches(cands, algorithms, no_rotations) == [Candidate(0, 8, 5)]
    strict = {7: BankSettings(pdq_threshold=4), 8: BankSettings(pdq_threshold=4)}
    assert domain.best_matches(cands, algorithms, strict) == []


@pytest.mark.parametrize(
    ("match", "negative", "suppressed"),
    [
        (10, None, False),  # nothing in the negative bank near the query
        (10, 0, True),  # the query is the known false positive
        (10, 10, True),  # as close to the false positive as to the banked hash
        (10, 11, False),  # closer to the banked hash: still a match
        (31, 31, True),
        (31, 32, False),  # beyond the negative bank's threshold
        (0, 0, True),  # an exact MD5 false positive
    ],
)
def test_the_negative_bank_suppresses_a_match_when_the_query_is_at_least_as_close_to_it(
    match: int, negative: int | None, suppressed: bool
) -> None:
    assert domain.suppressed(match, negative) is suppressed


# -- vPDQ ------------------------------------------------------------------------------------------


def test_vpdq_matches_when_80_percent_of_the_query_frames_match_by_default() -> None:
    rng = random.Random(7)
    video = [Frame(f"{rng.getrandbits(256):064x}") for _ in range(10)]
    excerpt = [Frame(hex_at(31, f.value), quality=90) for f in video[:4]]
    unrelated = [Frame(f"{rng.getrandbits(256):064x}", quality=90) for _ in range(2)]
    result = domain.vpdq_compare([*excerpt, unrelated[0]], video)
    assert (result.query_match_percent, result.compared_match_percent) == (80.0, 40.0)
    assert result.is_match(BankSettings())
    fewer = domain.vpdq_compare([*excerpt[:3], *unrelated], video)
    assert fewer.query_match_percent == 60.0 and not fewer.is_match(BankSettings())
    assert not result.is_match(BankSettings(vpdq_compared_match_percent=50))
    assert result.is_match(BankSettings(vpdq_compared_match_percent=40))
    beyond = [Frame(hex_at(32, f.value), quality=90) for f in video[:4]]
    assert domain.vpdq_compare(beyond, video).query_match_percent == 0.0


def test_vpdq_ignores_query_frames_below_quality_50_and_counts_each_distinct_frame_once() -> None:
    video = [Frame("1" * 64), Frame("2" * 64)]
    query = [Frame("1" * 64, 90), Frame("1" * 64, 90), Frame("2" * 64, 49), Frame("3" * 64, None)]
    assert domain.usable_frames(query) == ["1" * 64, "3" * 64]
    result = domain.vpdq_compare(query, video)
    assert (result.query_match_percent, result.compared_match_percent) == (50.0, 50.0)
    far = domain.vpdq_compare([Frame(hex_at(32, "1" * 64), 90)], video)
    assert far.query_match_percent == 0.0


def test_vpdq_percentages_of_nothing_are_zero() -> None:
    assert domain.vpdq_percentages(0, 0, 0, 0) == domain.VpdqResult(0.0, 0.0)


# -- banking a submission --------------------------------------------------------------------------


def test_a_submission_banks_valid_hashes_and_says_why_it_skipped_the_others() -> None:
    rotations = [f"{i:064x}" for i in range(8)]
    hashes = [
        pdq(rotations[0], dihedral=rotations),
        pdq("b" * 64, quality=49),
        pdq("c" * 63),
        pdq(rotations[0]),  # the same image twice
        SubmittedHash(algorithm="md5", value="D" * 32, media="video"),
        SubmittedHash(algorithm="md5", value="e" * 32, media="video"),
        SubmittedHash(algorithm="vpdq", value="", media="video", frames=["1" * 64, "1" * 64]),
        pdq("f" * 64),
    ]
    accepted, skipped = domain.plan_banking(
        hashes, already=[("md5", "e" * 32)], negatives=[("pdq", "f" * 64)]
    )
    assert [(a.index, a.algorithm) for a in accepted] == [(0, "pdq"), (4, "md5"), (6, "vpdq")]
    assert accepted[0].aliases == tuple(rotations[1:])
    assert accepted[1].value == "d" * 32  # one spelling
    assert accepted[2].frames == ("1" * 64,)
    assert [(s.index, s.reason) for s in skipped] == [
        (1, "low_quality"),
        (2, "invalid"),
        (3, "duplicate"),
        (5, "duplicate"),
        (7, "negative_bank"),
    ]


def test_a_video_is_identified_by_its_distinct_frames_whatever_their_order() -> None:
    a = domain.identity_value("vpdq", None, ["1" * 64, "2" * 64, "1" * 64])
    b = domain.identity_value("vpdq", None, ["2" * 64, "1" * 64])
    assert a == b and a.startswith("frames:")
    assert domain.identity_value("pdq", H) == H


# -- banks -----------------------------------------------------------------------------------------


def test_each_partner_organisation_gets_its_own_case_bank_with_a_valid_name() -> None:
    assert domain.case_bank_name("ngo-taipei") == "ORG_NGO_TAIPEI"
    punctuated = domain.case_bank_name("ngo_taipei")
    assert punctuated.startswith("ORG_NGO_TAIPEI_") and punctuated != "ORG_NGO_TAIPEI"
    for org in ("ngo-taipei", "Garden of Hope Foundation", "台北", "x" * 100):
        name = domain.case_bank_name(org)
        assert domain.bank_name_error(name) is None, name
        assert domain.list_bank_error(name) is not None  # lists cannot be imported there


def test_a_minors_hashes_go_to_a_child_protection_bank_no_adults_bank_is_named_like() -> None:
    assert domain.programme_of_case("minor") == "child_protection"
    assert domain.programme_of_case("adult") == "adults"
    orgs = ("ngo-taipei", "ngo-taipei-child", "ngo_taipei__child", "x" * 100, "台北")
    adults = {domain.case_bank_name(o) for o in orgs}
    children = {domain.case_bank_name(o, "child_protection") for o in orgs}
    assert not adults & children and len(adults) == len(children) == len(orgs)
    for name in adults | children:
        assert domain.bank_name_error(name) is None, name
    assert {domain.case_bank_programme(n) for n in adults} == {"adults"}
    assert {domain.case_bank_programme(n) for n in children} == {"child_protection"}
    assert domain.case_bank_programme("STOPNCII_2026") is None


def test_a_banks_programme_is_set_once_and_a_case_banks_follows_its_name() -> None:
    assert domain.bank_programme("LIST_A", None, None) == "adults"
    assert domain.bank_programme("LIST_A", None, "child_protection") == "child_protection"
    assert domain.bank_programme("LIST_A", "child_protection", None) == "child_protection"
    with pytest.raises(domain.ProgrammeFixed):
        domain.bank_programme("LIST_A", "child_protection", "adults")
    assert domain.bank_programme("ORG_X__CHILD", None, None) == "child_protection"
    with pytest.raises(domain.ProgrammeFixed):
        domain.bank_programme("ORG_X", None, "child_protection")


@pytest.mark.parametrize("name", ["lower", "1ABC", "A", "A-B", "ORG_X", "NEGATIVE", "A" * 64])
def test_a_list_bank_name_must_be_upper_snake_and_not_reserved(name: str) -> None:
    assert domain.list_bank_error(name) is not None


def test_bank_settings_out_of_range_say_what_to_fix() -> None:
    assert BankSettings().errors() == []
    errors = BankSettings(pdq_threshold=65, vpdq_query_match_percent=101).errors()
    assert [f for f, _ in errors] == ["pdq_threshold", "vpdq_query_match_percent"]


def test_change_keys_are_ordered_by_stream_position_then_by_change() -> None:
    assert domain.change_key(5, 0) < domain.change_key(5, 1) < domain.change_key(6, 0)
    with pytest.raises(ValueError):
        domain.change_key(1, 1 << domain.CHANGE_KEY_BITS)


# -- the plain list format -------------------------------------------------------------------------


def test_a_list_in_hmas_plain_format_parses_with_blank_lines_comments_and_any_case() -> None:
    text = f"# from HMA\npdq {H.upper()}\n\n  video_md5 {'0' * 32}  \r\npdq {H}\nPDQ {'b' * 64}\n"
    parsed = domain.parse_hash_list(text)
    assert parsed.ok and parsed.duplicates == 1 and parsed.lines == 6
    assert [(h.line, h.algorithm, h.value) for h in parsed.hashes] == [
        (2, "pdq", H),
        (4, "md5", "0" * 32),
        (6, "pdq", "b" * 64),
    ]


def test_every_bad_line_of_a_list_is_reported_with_its_number() -> None:
    text = f"pdq {H}\nphotodna 1234\npdq {H[:-1]}\nvideo_md5 {H}\npdq{H}\npdq {H} extra\n"
    parsed = domain.parse_hash_list(text)
    assert [e.line for e in parsed.errors] == [2, 3, 4, 5, 6]
    assert all(e.message and H not in e.message for e in parsed.errors)


def test_export_writes_what_the_plain_format_can_express() -> None:
    assert domain.export_line("pdq", "image", H) == f"pdq {H}"
    assert domain.export_line("md5", "video", "0" * 32) == f"video_md5 {'0' * 32}"
    assert domain.export_line("md5", "image", "0" * 32) is None  # no signal type for it
    assert domain.export_line("vpdq", "video", None) is None
    parsed = domain.parse_hash_list(f"{domain.export_line('pdq', 'image', H)}\n")
    assert [(h.algorithm, h.value) for h in parsed.hashes] == [("pdq", H)]


def test_a_long_list_is_cut_into_events_of_at_most_5000_hashes() -> None:
    parsed = domain.parse_hash_list("\n".join(f"pdq {i:064x}" for i in range(12_001)))
    parts = domain.chunks(parsed.hashes)
    assert [len(p) for p in parts] == [5000, 5000, 2001]
    assert [len(p) for p in domain.chunks([])] == [0]


# -- look-up bodies --------------------------------------------------------------------------------


def test_a_lookup_item_accepts_upper_case_hex_and_the_8_rotations_original_first() -> None:
    rotations = [f"{i:064x}" for i in range(8)]
    item = HashIn(algorithm="pdq", value=rotations[0].upper(), dihedral=rotations)
    assert item.query().values == tuple(rotations)
    assert HashIn(algorithm="md5", value="A" * 32).query().values == ("a" * 32,)
    frames = HashIn(
        algorithm="vpdq",
        frames=[{"value": "1" * 64, "quality": 10}, {"value": "2" * 64, "quality": 80}],
    )
    assert frames.query().frames == ("2" * 64,)


@pytest.mark.parametrize(
    "body",
    [
        {"algorithm": "pdq", "value": "a" * 63},
        {"algorithm": "pdq", "value": "a" * 64, "dihedral": ["b" * 64] * 8},
        {"algorithm": "pdq", "value": "a" * 64, "dihedral": ["a" * 64] * 7},
        {"algorithm": "md5", "value": "a" * 64},
        {"algorithm": "md5", "value": "a" * 32, "dihedral": ["a" * 64] * 8},
        {"algorithm": "vpdq", "value": "a" * 64},
        {"algorithm": "sha1", "value": "a" * 40},
        {"algorithm": "pdq", "value": "a" * 64, "filename": "me.jpg"},
    ],
)
def test_a_malformed_lookup_item_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        HashIn.model_validate(body)


def test_a_low_quality_pdq_item_is_not_searched_and_cannot_be_reported_as_a_sighting() -> None:
    item = HashIn(algorithm="pdq", value="a" * 64, quality=49)
    assert item.low_quality and item.query().values == ()
    assert not HashIn(algorithm="pdq", value="a" * 64, quality=50).low_quality
    sighting = {"url": "https://example.com/x", "seen_at": "2026-01-01T00:00:00Z"}
    with pytest.raises(ValidationError):
        Sighting.model_validate({**sighting, "hash": item.model_dump()})
    Sighting.model_validate({**sighting, "hash": {"algorithm": "pdq", "value": "a" * 64}})


def test_a_lookup_takes_1_to_1000_items() -> None:
    item = {"algorithm": "md5", "value": "0" * 32}
    Lookup.model_validate({"items": [item] * domain.MAX_LOOKUP_ITEMS})
    for n in (0, domain.MAX_LOOKUP_ITEMS + 1):
        with pytest.raises(ValidationError):
            Lookup.model_validate({"items": [item] * n})


# -- opaque ids ------------------------------------------------------------------------------------


def test_a_match_id_is_stable_bound_to_its_platform_and_unforgeable() -> None:
    tokens = Tokens(b"k" * 64, b"b" * 32)
    entry = str(uuid.uuid4())
    one = tokens.match_id("platform-a", entry)
    assert one == tokens.match_id("platform-a", entry)
    assert one != tokens.match_id("platform-b", entry)
    assert entry not in one and entry.replace("-", "") not in one
    assert tokens.entry_for(one, "platform-a") == entry
    assert tokens.entry_for(one, "platform-b") is None
    assert tokens.entry_for(one[:-2] + ("AA" if one[-2:] != "AA" else "BB"), "platform-a") is None
    assert tokens.open("m_not-a-token") is None and tokens.open("x") is None
    assert Tokens(b"j" * 64, b"b" * 32).open(one) is None  # another deployment's key


def test_every_case_bank_has_one_public_id_so_platforms_cannot_group_hashes_by_ngo() -> None:
    # F12: a stable id per organisation told platforms which hashes came from one NGO
    tokens = Tokens(b"k" * 64, b"b" * 32)
    bank = domain.case_bank_name("ngo-taipei")
    assert tokens.bank_id(bank) == tokens.bank_id(domain.case_bank_name("ngo-kaohsiung"))
    assert tokens.bank_id(bank) != tokens.bank_id("STOPNCII")  # imported lists keep their own
    assert tokens.bank_id("STOPNCII") != tokens.bank_id("OTHER_LIST")
    assert "taipei" not in tokens.bank_id(bank).lower()


# -- decisions: the events they build --------------------------------------------------------------


def test_a_bank_configured_event_carries_every_setting() -> None:
    settings = BankSettings(enabled=False, pdq_threshold=20, match_dihedral=False)
    event = domain.bank_configured("NCMEC_LIST", settings)
    assert event.bank == "NCMEC_LIST" and not event.enabled and not event.match_dihedral
    assert event.pdq_threshold == 20
    assert event.vpdq_query_match_percent == domain.VPDQ_QUERY_MATCH_PERCENT
    assert event.vpdq_compared_match_percent == domain.VPDQ_COMPARED_MATCH_PERCENT


def test_a_list_is_imported_in_chunks_numbered_with_their_total() -> None:
    parsed = domain.parse_hash_list(
        "\n".join(f"pdq {i:064x}" for i in range(5)) + "\nvideo_md5 " + "f" * 32
    )
    events = domain.list_chunks("imp-1", "LIST_A", "replace", parsed, size=4)
    assert [(e.chunk, e.chunks, len(e.hashes)) for e in events] == [(0, 2, 4), (1, 2, 2)]
    assert {(e.import_id, e.bank, e.mode) for e in events} == {("imp-1", "LIST_A", "replace")}
    assert events[1].hashes[-1].algorithm == "md5" and events[1].hashes[-1].value == "f" * 32
    assert [h.value for e in events for h in e.hashes] == [h.value for h in parsed.hashes]
    big = domain.ParsedList(
        hashes=[domain.ListedLine(i, "pdq", f"{i:064x}") for i in range(domain.IMPORT_CHUNK + 1)]
    )
    assert [len(e.hashes) for e in domain.list_chunks("i", "B", "add", big)] == [
        domain.IMPORT_CHUNK,
        1,
    ]


def test_an_empty_list_is_one_empty_chunk_so_a_replace_empties_the_bank() -> None:
    (event,) = domain.list_chunks("imp-2", "LIST_A", "replace", domain.parse_hash_list("# none"))
    assert (event.chunk, event.chunks, event.hashes) == (0, 1, [])


def found(
    from_case: bool,
    bank: str = "ORG_NGO",
    algorithm: str = "pdq",
    shares: tuple[float | None, float | None] = (None, None),
) -> MatchFound:
    return domain.match_found(
        match_id="m_1",
        sighting_id="s-1",
        bank=bank,
        entry_key="e-1",
        algorithm=algorithm,
        distance=3,
        rotated=True,
        query_match_percent=shares[0],
        compared_match_percent=shares[1],
        platform="platform-a",
        seen_at="2026-11-29T21:00:00Z",
        url="https://platform.example/p/1",
        from_case=from_case,
    )


def test_a_match_from_a_case_keeps_the_url() -> None:
    event = found(True)
    assert event.url == "https://platform.example/p/1" and event.url_withheld is False
    assert (event.match_id, event.entry_key, event.distance, event.rotated) == (
        "m_1",
        "e-1",
        3,
        True,
    )
    assert event.platform == "platform-a" and event.seen_at == "2026-11-29T21:00:00Z"


def test_a_match_from_an_imported_list_withholds_the_url() -> None:
    event = found(False, bank="LIST_A")
    assert event.url is None and event.url_withheld is True


def test_a_video_match_carries_whole_percentages() -> None:
    event = found(True, algorithm="vpdq", shares=(87.9, 12.5))
    assert (event.query_match_percent, event.compared_match_percent) == (87, 12)


def test_a_match_belongs_to_its_case_only_for_a_case_entry() -> None:
    assert domain.owning_case("case", "c-1") == "c-1"
    assert domain.owning_case("case", None) is None
    assert domain.owning_case("list", "c-1") is None


def test_feedback_carries_the_content_hash_when_sent() -> None:
    event = domain.match_feedback("m_1", "e-1", "false_positive", "platform-a", ("md5", "a" * 32))
    assert (event.verdict, event.content_algorithm, event.content_value) == (
        "false_positive",
        "md5",
        "a" * 32,
    )
    bare = domain.match_feedback("m_1", "e-1", "blocked", "platform-a", None)
    assert bare.content_algorithm is None and bare.content_value is None


VPDQ_REFUSED = (
    "only PDQ and MD5 hashes go into the negative bank; this entry is a video's vPDQ frames"
)
NO_CONTENT = (
    "the platform has not reported a false positive with the hash of its content for this "
    "match; confirm the banked hash instead, or wait for it"
)


def test_only_pdq_and_md5_banked_hashes_go_into_the_negative_bank() -> None:
    assert domain.negative_hash("banked_hash", "pdq", H, None, None, None) == ("pdq", H)
    assert domain.negative_hash("banked_hash", "md5", "b" * 32, None, None, None) == (
        "md5",
        "b" * 32,
    )
    for algorithm, value in (("vpdq", None), ("vpdq", "frames:x"), ("pdq", None), ("pdq", "")):
        with pytest.raises(domain.BankRuleError) as refused:
            domain.negative_hash("banked_hash", algorithm, value, None, None, None)
        assert refused.value.detail == VPDQ_REFUSED == str(refused.value)


def test_reported_content_needs_the_platforms_false_positive_with_its_hash() -> None:
    assert domain.negative_hash(
        "reported_content", "vpdq", None, "false_positive", "pdq", "c" * 64
    ) == ("pdq", "c" * 64)
    for verdict, content in (
        (None, ("pdq", "c" * 64)),  # no verdict (or no match row)
        ("blocked", ("pdq", "c" * 64)),
        ("false_positive", (None, None)),  # reported without its content's hash
    ):
        with pytest.raises(domain.BankRuleError) as refused:
            domain.negative_hash("reported_content", "pdq", H, verdict, *content)
        assert refused.value.detail == NO_CONTENT


def flip_bits(value: str, bits: int) -> str:
    return f"{int(value, 16) ^ ((1 << bits) - 1):064x}"


def test_reported_content_is_compared_with_the_banked_hash_its_rotations_and_a_videos_frames() -> (
    None
):
    far = flip_bits(H, 40)
    near = flip_bits(H, 20)
    same = domain.compare_reported_content("pdq", [H], "pdq", H.upper(), 31)
    assert (same.equal, same.distance, same.within_threshold) == (True, 0, True)
    assert domain.compare_reported_content("pdq", [H], "pdq", near, 31) == (
        domain.ContentComparison(True, False, 20, 31, True)
    )
    assert domain.compare_reported_content("pdq", [H], "pdq", near, 19).within_threshold is False
    assert domain.compare_reported_content("pdq", [H], "pdq", far, 31).within_threshold is False
    assert domain.compare_reported_content("pdq", [far, H], "pdq", H, 31).equal  # a rotation
    assert domain.compare_reported_content("vpdq", [far, near], "pdq", H, 31) == (
        domain.ContentComparison(True, False, 20, domain.VPDQ_DISTANCE, True)
    )
    md5 = "b" * 32
    assert domain.compare_reported_content("md5", [md5], "md5", md5, 31).equal
    assert not domain.compare_reported_content("md5", [md5], "md5", "c" * 32, 31).equal
    for entry, content in (("md5", ("pdq", H)), ("pdq", ("md5", md5)), ("pdq", (None, None))):
        assert domain.compare_reported_content(entry, [H], *content, 31) == domain.NOT_COMPARED


def test_the_victims_own_hash_never_enters_the_negative_bank_and_a_near_one_needs_a_review() -> (
    None
):
    equal = domain.compare_reported_content("pdq", [H], "pdq", H, 31)
    near = domain.compare_reported_content("pdq", [H], "pdq", flip_bits(H, 20), 31)
    far = domain.compare_reported_content("pdq", [H], "pdq", flip_bits(H, 40), 31)
    for reviewed in (False, True):
        with pytest.raises(domain.ReportedContentIsBanked) as refused:
            domain.check_reported_content(equal, reviewed)
        assert refused.value.status == 409
    with pytest.raises(domain.ReportedContentIsBanked) as at_submission:
        domain.check_report(equal)
    assert at_submission.value.status == 422
    with pytest.raises(domain.ReportedContentNearBanked) as near_refused:
        domain.check_reported_content(near, near_reviewed=False)
    assert "PDQ distance 20" in near_refused.value.detail
    assert near_refused.value.status == 409
    domain.check_reported_content(near, near_reviewed=True)
    domain.check_reported_content(far, near_reviewed=False)
    domain.check_report(near)
    domain.check_reported_content(domain.NOT_COMPARED, near_reviewed=False)


def test_a_confirmed_false_positive_names_the_hash_it_puts_into_the_negative_bank() -> None:
    event = domain.false_positive_confirmed(
        "n-1", "m_1", "e-1", "ORG_NGO", "reported_content", ("md5", "d" * 32)
    )
    assert (event.negative_id, event.match_id, event.entry_key, event.bank) == (
        "n-1",
        "m_1",
        "e-1",
        "ORG_NGO",
    )
    assert (event.target, event.algorithm, event.value) == ("reported_content", "md5", "d" * 32)


def test_the_domain_imports_no_store_nats_sql_or_http() -> None:
    assert top_level_packages_loaded("ncii_hashmatch.domain") == []
    source = Path(domain.__file__).read_text()
    assert "ncii_events" not in source and "RecordedEvent" not in source
    assert "ncii_hashmatch.matcher" not in source


# -- floods (decision 24) ------------------------------------------------------------------------


def test_a_sighting_window_is_aligned_to_its_length_and_due_after_the_grace() -> None:
    window = domain.SightingWindow.at(1_800_000_599.9, 3600)
    assert (window.start, window.end) == (1_800_000_000, 1_800_003_600)
    assert domain.SightingWindow.at(1_800_003_600, 3600).start == 1_800_003_600
    assert not window.due(1_800_003_600 + 59, grace=60)
    assert window.due(1_800_003_600 + 60, grace=60)


def test_only_the_first_sighting_of_a_window_is_a_match_found_and_one_sighting_adds_no_count() -> (
    None
):
    assert domain.records_match_found(None)
    tally = domain.SightingTally(1, "2026-11-29T10:00:00Z", "2026-11-29T10:00:00Z")
    assert not domain.records_match_found(tally)
    window = domain.SightingWindow(1_800_000_000, 1_800_003_600)
    kw = {"match_id": "m_x", "entry_key": "e", "platform": "plat", "window": window}
    assert domain.sightings_counted(**kw, tally=tally) is None  # type: ignore[arg-type]
    counted = domain.sightings_counted(  # type: ignore[arg-type]
        **kw, tally=domain.SightingTally(300, "2026-11-29T10:00:00Z", "2026-11-29T10:59:00Z")
    )
    assert counted is not None and counted.sightings == 300
    assert (counted.window_start, counted.window_end) == (
        "2027-01-15T08:00:00Z",
        "2027-01-15T09:00:00Z",
    )


def test_the_same_verdict_again_is_no_news_and_a_changed_one_is() -> None:
    first = domain.match_feedback("m_x", "e", "blocked", "plat", None)
    assert first is not None
    current = domain.current_verdict([first])
    assert domain.match_feedback("m_x", "e", "blocked", "plat", None, current) is None
    assert domain.match_feedback("m_x", "e", "not_blocked", "plat", None, current) is not None
    content = ("pdq", "a" * 64)
    fp = domain.match_feedback("m_x", "e", "false_positive", "plat", content, current)
    assert fp is not None
    current = domain.current_verdict([first, fp])
    assert domain.match_feedback("m_x", "e", "false_positive", "plat", content, current) is None
    other = ("pdq", "b" * 64)
    assert domain.match_feedback("m_x", "e", "false_positive", "plat", other, current) is not None


def test_a_lookup_costs_its_hashes_and_frames() -> None:
    frames = [{"value": "a" * 64, "quality": 90}] * 3
    body = Lookup.model_validate(
        {
            "items": [
                {"algorithm": "md5", "value": "0" * 32},
                {"algorithm": "pdq", "value": "a" * 64, "dihedral": ["a" * 64] + ["b" * 64] * 7},
                {"algorithm": "vpdq", "frames": frames},
            ]
        }
    )
    assert body.cost == 1 + 8 + 3


# -- the folds an auditor's as-of relies on (decision 56) ------------------------------------------


def _banked(submission: str, keys: list[str], at: str) -> object:
    from ncii_contracts.hashmatch import BankedEntry, HashesBanked, SkippedHash

    return HashesBanked(
        submission_id=submission,
        bank="ORG_NGO",
        entries=[BankedEntry(entry_key=k, index=i, algorithm="pdq") for i, k in enumerate(keys)],
        skipped=[SkippedHash(index=len(keys), reason="low_quality")],
        matchable_from=at,
        poll_interval_ms=200,
    )


def _withdrawn(reason: str, keys: list[str], at: str) -> object:
    from ncii_contracts.hashmatch import HashesWithdrawn

    return HashesWithdrawn(reason=reason, entry_keys=keys, unmatchable_from=at)  # type: ignore[arg-type]


def test_a_cases_banking_folds_each_hash_out_of_matching_once_by_the_first_withdrawal() -> None:
    t = "2026-11-30T08:00:0{}.000000Z".format
    history = [
        (_banked("s1", ["k1", "k2"], t(1)), t(1)),
        (_banked("s2", ["k3"], t(2)), t(2)),
        (_withdrawn("false_positive", ["k2"], t(3)), t(3)),
        (_withdrawn("case_withdrawn", ["k1", "k2", "k3"], t(4)), t(4)),
    ]
    assert domain.CaseBanking.replay([]) is None
    after_two = domain.CaseBanking.replay(history[:3])
    assert after_two is not None and after_two.matchable == 2
    folded = domain.CaseBanking.replay(history)
    assert folded is not None and folded.matchable == 0
    states = {e.entry_key: (e.state, e.reason, e.unmatchable_from) for e in folded.entries}
    # k2 became a known false positive first: the case's withdrawal does not re-label it
    assert states == {
        "k1": ("withdrawn", "case_withdrawn", t(4)),
        "k2": ("negative", "false_positive", t(3)),
        "k3": ("withdrawn", "case_withdrawn", t(4)),
    }
    assert folded.skipped == (("s1", 2, "low_quality"), ("s2", 1, "low_quality"))
    assert domain.retired_state("case_erased") == "erased"


def test_a_match_folds_every_sighting_once_and_the_platforms_latest_verdict() -> None:
    from ncii_contracts.hashmatch import MatchFeedbackReceived, SightingsCounted

    first = found(True)
    second = found(True).model_copy(update={"seen_at": "2026-11-29T23:10:00Z", "distance": 1})
    counted = SightingsCounted(
        match_id="m_1",
        entry_key="e-1",
        platform="platform-a",
        window_start="2026-11-29T21:00:00Z",
        window_end="2026-11-29T22:00:00Z",
        sightings=5,
        first_seen_at="2026-11-29T21:00:00Z",
        last_seen_at="2026-11-29T21:59:00Z",
    )
    verdict = MatchFeedbackReceived(
        match_id="m_1",
        entry_key="e-1",
        verdict="false_positive",
        platform="platform-a",
        content_algorithm="pdq",
        content_value=H,
    )
    at = "2026-11-30T00:00:00.000000Z"
    assert domain.CaseMatch.replay([(verdict, at)]) is None  # nothing before a sighting
    folded = domain.CaseMatch.replay([(first, at), (counted, at), (second, at), (verdict, at)])
    assert folded is not None
    # the window's MatchFound is one of its five; the next window's MatchFound adds one
    assert (folded.sightings, folded.windows, folded.closest_distance) == (6, 2, 1)
    assert (folded.first_seen_at, folded.last_seen_at) == (
        "2026-11-29T21:00:00Z",
        "2026-11-29T23:10:00Z",
    )
    assert (folded.verdict, folded.verdict_at, folded.content_reported) == (
        "false_positive",
        at,
        True,
    )
    assert "url" not in {f for f in type(folded).__dataclass_fields__}
