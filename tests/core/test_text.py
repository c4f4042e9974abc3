"""Normalisation and word tokenisation shared by the query builder and caption matching: each
rule of README "Tokenisation" on the constructs of real Wikipedia prose."""

import pytest

from wit_builder.core.text import (TOKENIZATION, is_query_word, normalize, normalize_query,
                                   sentences, tokens, words)


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


def test_numbers_with_thousands_separators_and_decimals_are_one_word():
    text = "a population of 1,000 in 1900 and 12,345,678 by 2010, growing 3.5 per cent (0.75 km²)"
    assert words(text) == ["a", "population", "of", "1,000", "in", "1900", "and", "12,345,678",
                           "by", "2010", "growing", "3.5", "per", "cent", "0.75", "km2"]


def test_a_full_stop_or_comma_after_a_number_is_punctuation():
    assert tokens(normalize("In 1860. Lincoln won 1, 2 or 3,")) == [
        "in", "1860", ".", "lincoln", "won", "1", ".", "2", "or", "3", "."]


def test_possessives_fold_to_their_word():
    assert words("Lincoln's hat, Aristotle’s Physics and the parents' house") == [
        "lincoln", "hat", "aristotle", "physics", "and", "the", "parents", "house"]
    assert words("O'Neill's 1990's") == ["o'neill", "1990"]


def test_abbreviations_with_internal_full_stops_are_one_word():
    assert words("the U.S. Army, i.e. the army; e.g. J.R.R. Tolkien a.k.a. U.S.A") == [
        "the", "u.s.", "army", "i.e.", "the", "army", "e.g.", "j.r.r.", "tolkien", "a.k.a.",
        "u.s.a"]
    # an abbreviation is not a sentence end: "u.s. army" is a pair
    assert tokens(normalize("U.S. Army")) == ["u.s.", "army"]
    # a single initial and a word with a full stop inside are not abbreviations
    assert tokens(normalize("A. Lincoln Ph.D. www.example")) == [
        "a", ".", "lincoln", "ph", ".", "d", ".", "www", ".", "example"]


@pytest.mark.parametrize("text, runs", [
    ("American Revolutionary War (1775–1783) began", [["american", "revolutionary", "war"],
                                                      ["1775"], ["1783"], ["began"]]),
    ("from 1775-1783 until", [["from", "1775"], ["1783", "until"]]),
    ("in 1860. Lincoln", [["in", "1860"], ["lincoln"]]),
    ("red, green; blue: yellow", [["red"], ["green"], ["blue"], ["yellow"]]),
    ("Paris — the capital – and Lyon − two", [["paris"], ["the", "capital"], ["and", "lyon"],
                                               ["two"]]),
    ("cats [dogs] {mice} and/or birds | fish", [["cats"], ["dogs"], ["mice"], ["and"],
                                                 ["or", "birds"], ["fish"]]),
    ("Apples • Pears · Plums", [["apples"], ["pears"], ["plums"]]),
    ("One two. Three four! Five?\nSix seven\n\nEight nine", [["one", "two"], ["three", "four"],
                                                            ["five"], ["six", "seven"],
                                                            ["eight", "nine"]]),
    ("Jean-Paul Sartre's state-of-the-art COVID-19 work", [["jean-paul", "sartre",
                                                            "state-of-the-art", "covid-19",
                                                            "work"]]),
])
def test_adjacency_ends_at_punctuation_and_sentence_ends(text, runs):
    assert sentences(text) == runs


@pytest.mark.parametrize("word, kept", [
    ("a", True), ("i", True), ("s", False), ("e", False), ("u", False), ("é", False),
    ("東", True), ("u.s.", True), ("1990", True), ("2024", True), ("000", False), ("1", False),
    ("10", False), ("1,000", False), ("3.5", False), ("3000", False), ("0123", False),
    ("42nd", True), ("covid-19", True), ("b-52", True),
])
def test_unigram_queries_exclude_single_letters_and_numbers_but_years(word, kept):
    assert is_query_word(word) is kept
    assert is_query_word(word, keep_numbers=True) is (kept or word[0].isdigit())


def test_the_rules_have_a_version():
    assert TOKENIZATION.startswith("witbuilder-tokens-")
