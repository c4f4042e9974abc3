"""Wikitext → plain text: one test per construct of real articles."""

from wit_builder.core.text import sentences, words
from wit_builder.queries.wikipedia.wikitext import strip_wikitext


def visible_words(wikitext: str) -> list[str]:
    return words(strip_wikitext(wikitext))


def test_nested_templates_are_removed_whole():
    text = "Before {{Infobox person|name=Ada {{birth date|1815|12|10}}|spouse={{marriage|X}}}} after"
    assert visible_words(text) == ["before", "after"]


def test_multiline_templates_and_template_parameters_are_removed():
    text = "A {{cite web\n| url = http://x.org\n| title = {{{1|hidden}}}\n}} b"
    assert visible_words(text) == ["a", "b"]


def test_tables_are_removed_even_when_nested():
    text = ("Intro.\n{| class=\"wikitable\"\n|-\n! head\n|-\n| cell\n{|\n| inner\n|}\n| more\n|}\n"
            "Outro.")
    assert visible_words(text) == ["intro", "outro"]


def test_refs_are_removed_with_their_content_and_self_closing_refs_too():
    text = 'Fact<ref name="a">{{cite book|title=Hidden}} hidden words</ref> and<ref name="a" /> more'
    assert visible_words(text) == ["fact", "and", "more"]


def test_comments_are_removed_even_when_multiline():
    assert visible_words("one <!-- hidden\nstill hidden --> two") == ["one", "two"]


def test_html_tags_are_removed_but_their_text_is_kept():
    text = "a <small>b</small> <span style=\"x\">c</span><br />d <sup>2</sup>"
    assert visible_words(text) == ["a", "b", "c", "d", "2"]


def test_math_gallery_and_similar_elements_are_removed_with_content():
    text = "x <math>\\alpha + beta</math> y <gallery>\nA.jpg|hidden\n</gallery> z"
    assert visible_words(text) == ["x", "y", "z"]


def test_links_keep_their_text_or_target_and_trailing_letters():
    text = "[[Paris|the capital]] of [[France]], [[dog]]s and [[Cat#Anatomy]]"
    assert visible_words(text) == ["the", "capital", "of", "france", "dogs", "and", "cat"]


def test_file_image_and_category_links_are_removed_with_nested_links_in_captions():
    text = ("a [[File:Map.png|thumb|A [[river]] in [[Spain|spain]]]] b [[Image:x.jpg]] "
            "c [[Category:Rivers]] d [[category:Lower]] e")
    assert visible_words(text) == ["a", "b", "c", "d", "e"]


def test_interlanguage_links_are_removed_but_titles_with_colons_kept():
    assert visible_words("a [[fr:Chien]] b [[Star Wars: Episode IV]]") == \
        ["a", "b", "star", "wars", "episode", "iv"]


def test_external_links_keep_label_and_drop_url():
    text = "see [https://example.org/page the site] or [http://x.org] or https://bare.example/x end"
    assert visible_words(text) == ["see", "the", "site", "or", "or", "end"]


def test_headings_are_kept_as_sentences_of_their_own():
    text = "Intro text\n== Early life ==\nBorn here.\n=== Family ===\nMore"
    assert sentences(strip_wikitext(text)) == [["intro", "text"], ["early", "life"],
                                               ["born", "here"], ["family"], ["more"]]


def test_bold_italic_marks_and_list_markers_are_removed():
    text = "'''Bold''' and ''italic'' and '''''both'''''\n* item one\n# item two\n: indented\n; term"
    assert sentences(strip_wikitext(text)) == [["bold", "and", "italic", "and", "both"],
                                               ["item", "one"], ["item", "two"], ["indented"],
                                               ["term"]]


def test_entities_are_decoded_after_markup_is_removed():
    text = "caf&#233; &amp; bar&nbsp;baz &lt;ref&gt;kept&lt;/ref&gt; 5&ndash;6"
    assert visible_words(text) == ["café", "bar", "baz", "ref", "kept", "ref", "5", "6"]


def test_magic_words_and_horizontal_rules_are_removed():
    assert visible_words("__NOTOC__ a\n----\nb __TOC__") == ["a", "b"]


def test_removed_construct_between_words_keeps_them_adjacent():
    assert sentences(strip_wikitext("alpha {{x}} beta<ref>y</ref> gamma")) == \
        [["alpha", "beta", "gamma"]]


def test_visible_link_targets_are_collected_but_not_those_in_hidden_markup():
    links: list[str] = []
    strip_wikitext("[[Paris|p]] {{box|[[Hidden]]}} <ref>[[Ref]]</ref> "
                   "[[File:x.jpg|A [[Caption]]]] [[Rome#Forum]] [[Category:C]]", links)
    assert links == ["Paris", "Rome"]


def test_unclosed_template_is_shown_as_typed_and_unclosed_table_swallows_the_rest():
    assert visible_words("a }} b {{unclosed c {{x}} d") == ["a", "b", "unclosed", "c", "d"]
    assert visible_words("a\n|}\nb\n{|\n| cell\nc") == ["a", "b"]


def test_a_nul_inside_a_bare_url_is_part_of_the_url():
    """The compiled loop replays this (it once stopped the URL at the NUL byte)."""
    assert visible_words("see http://a.b/c\x00d e https://\x00x f") == ["see", "e", "f"]
