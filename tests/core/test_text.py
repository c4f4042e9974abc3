"""Normalisation and word tokenisation shared by the query builder and caption matching."""

from wit_builder.core.text import normalize, normalize_query, sentences, words


def test_words_keep_internal_hyphens_and_apostrophes():
    assert words("The state-of-the-art O'Neill plan") == ["the", "state-of-the-art", "o'neill", "plan"]


def test_words_drop_leading_trailing_and_doubled_joiners():
    assert words("'quoted' -dash- a--b it''s") == ["quoted", "dash", "a", "b", "it", "s"]


def test_words_are_unicode_letters_and_digits_without_underscores():
    assert words("Café 42nd snake_case Ελληνικά 東京") == ["café", "42nd", "snake", "case",
                                                           "ελληνικά", "東京"]


def test_normalize_applies_nfkc_and_lower_case_and_folds_typographic_apostrophes():
    assert normalize("ﬁne ＡＢＣ O’Neill") == "fine abc o'neill"
    assert words("ﬁne O’Neill") == ["fine", "o'neill"]


def test_punctuation_is_never_part_of_a_word():
    assert words("red, (blue); green — yellow/black") == ["red", "blue", "green", "yellow", "black"]


def test_normalize_query_joins_words_with_single_spaces():
    assert normalize_query("  New_York   City ") == "new york city"
    assert normalize_query("AC/DC") == "ac dc"
    assert normalize_query("!!") == ""


def test_sentences_end_at_stops_and_line_breaks():
    text = "One two. Three four! Five?\nSix seven\n\nEight, nine"
    assert sentences(text) == [["one", "two"], ["three", "four"], ["five"], ["six", "seven"],
                               ["eight", "nine"]]
