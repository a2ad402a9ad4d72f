"""Permalink anchors in HTML are navigation, not text: Sphinx's ``¶`` header links (and those
of other generators) must not reach chunk texts or the heading paths of citations.

``SPHINX_PAGE`` is shaped exactly like a page of the Python 3.11 documentation as Sphinx 5
writes it (Debian's python3.11-doc, ``tutorial/inputoutput.html`` and ``library/json.html``):
``<section>`` per heading, a ``<span class="section-number">`` and an
``<a class="headerlink" href="#..." title="Permalink to this heading">¶</a>`` at the end of
each heading, the same link after API signatures, code-block captions and table captions,
and the sidebar's "Table of Contents". Where that package is installed its real tutorial
page is read as well.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpt4all_rag.localdocs import loaders
from gpt4all_rag.localdocs.chunking import chunk_document

SPHINX_PAGE = """\
<!DOCTYPE html>

<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1.0" /><meta name="generator" content="Docutils 0.17.1: http://docutils.sourceforge.net/" />

    <title>7. Input and Output &#8212; Python 3.11.2 documentation</title><meta name="viewport" content="width=device-width, initial-scale=1.0">
    <link rel="stylesheet" type="text/css" href="../_static/pygments.css" />
    <script data-url_root="../" id="documentation_options" src="../_static/documentation_options.js"></script>
  </head><body>
    <div class="related" role="navigation" aria-label="related navigation">
      <h3>Navigation</h3>
      <ul><li class="right" style="margin-right: 10px"><a href="../genindex.html" title="General Index" accesskey="I">index</a></li></ul>
    </div>
    <div class="document">
      <div class="documentwrapper">
        <div class="bodywrapper">
          <div class="body" role="main">
  <section id="input-and-output">
<span id="tut-io"></span><h1><span class="section-number">7. </span>Input and Output<a class="headerlink" href="#input-and-output" title="Permalink to this heading">¶</a></h1>
<p>There are several ways to present the output of a program; data can be printed in a
human-readable form, or written to a file for future use. This chapter will discuss some of
the possibilities.</p>
<section id="fancier-output-formatting">
<span id="tut-formatting"></span><h2><span class="section-number">7.1. </span>Fancier Output Formatting<a class="headerlink" href="#fancier-output-formatting" title="Permalink to this heading">¶</a></h2>
<p>So far we&#8217;ve encountered two ways of writing values: <em>expression statements</em> and
the <a class="reference internal" href="../library/functions.html#print" title="print"><code class="xref py py-func docutils literal notranslate"><span class="pre">print()</span></code></a> function.</p>
<section id="formatted-string-literals">
<span id="tut-f-strings"></span><h3><span class="section-number">7.1.1. </span>Formatted String Literals<a class="headerlink" href="#formatted-string-literals" title="Permalink to this heading">¶</a></h3>
<p><a class="reference internal" href="../reference/lexical_analysis.html#f-strings"><span class="std std-ref">Formatted string literals</span></a> (also called f-strings for
short) let you include the value of Python expressions inside a string by prefixing the
string with <code class="docutils literal notranslate"><span class="pre">f</span></code> or <code class="docutils literal notranslate"><span class="pre">F</span></code>.</p>
<div class="literal-block-wrapper docutils container" id="id1">
<div class="code-block-caption"><span class="caption-text">pi.py</span><a class="headerlink" href="#id1" title="Permalink to this code">¶</a></div>
<div class="highlight-python3 notranslate"><div class="highlight"><pre><span></span><span class="gp">&gt;&gt;&gt; </span><span class="kn">import</span> <span class="nn">math</span>
<span class="gp">&gt;&gt;&gt; </span><span class="nb">print</span><span class="p">(</span><span class="sa">f</span><span class="s1">&#39;The value of pi is approximately </span><span class="si">{</span><span class="n">math</span><span class="o">.</span><span class="n">pi</span><span class="si">:</span><span class="s1">.3f</span><span class="si">}</span><span class="s1">.&#39;</span><span class="p">)</span>
<span class="go">The value of pi is approximately 3.142.</span>
</pre></div>
</div>
</div>
</section>
</section>
<section id="reading-and-writing-files">
<span id="tut-files"></span><h2><span class="section-number">7.2. </span>Reading and Writing Files<a class="headerlink" href="#reading-and-writing-files" title="Permalink to this heading">¶</a></h2>
<p id="index-0"><a class="reference internal" href="../library/functions.html#open" title="open"><code class="xref py py-func docutils literal notranslate"><span class="pre">open()</span></code></a> returns a <a class="reference internal" href="../glossary.html#term-file-object"><span class="xref std std-term">file object</span></a>, and is most commonly used with
two positional arguments and one keyword argument:
<code class="docutils literal notranslate"><span class="pre">open(filename,</span> <span class="pre">mode,</span> <span class="pre">encoding=None)</span></code></p>
<section id="methods-of-file-objects">
<span id="tut-filemethods"></span><h3><span class="section-number">7.2.1. </span>Methods of File Objects<a class="headerlink" href="#methods-of-file-objects" title="Permalink to this heading">¶</a></h3>
<p>The rest of the examples in this section will assume that a file object called
<code class="docutils literal notranslate"><span class="pre">f</span></code> has already been created.</p>
<dl class="py function">
<dt class="sig sig-object py" id="json.dumps">
<span class="sig-prename descclassname"><span class="pre">json.</span></span><span class="sig-name descname"><span class="pre">dumps</span></span><span class="sig-paren">(</span><em class="sig-param"><span class="n"><span class="pre">obj</span></span></em><span class="sig-paren">)</span><a class="headerlink" href="#json.dumps" title="Permalink to this definition">¶</a></dt>
<dd><p>Serialize <em>obj</em> to a JSON formatted <a class="reference internal" href="stdtypes.html#str" title="str"><code class="xref py py-class docutils literal notranslate"><span class="pre">str</span></code></a>.</p>
</dd></dl>
<table class="docutils align-default" id="id2">
<caption><span class="caption-text">Mode characters</span><a class="headerlink" href="#id2" title="Permalink to this table">¶</a></caption>
<tbody><tr class="row-odd"><td><p>r</p></td><td><p>reading</p></td></tr></tbody>
</table>
<p>See the section on <a class="reference internal" href="#tut-files"><span class="std std-ref">Reading and Writing Files</span></a> and the ¶ sign, which stays in prose.</p>
</section>
</section>
</section>
            <div class="clearer"></div>
          </div>
        </div>
      </div>
      <div class="sphinxsidebar" role="navigation" aria-label="main navigation">
        <div class="sphinxsidebarwrapper">
  <div>
    <h3><a href="../contents.html">Table of Contents</a></h3>
  </div>
        </div>
      </div>
    </div>
  </body>
</html>
"""

_TOKEN = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def headings_of(path: Path) -> list[str]:
    chunks = chunk_document(loaders.load(path), word_tokens, chunk_tokens=48, overlap_tokens=0)
    return [c.heading or "" for c in chunks]


def test_sphinx_header_links_leave_text_and_heading_paths(tmp_path: Path) -> None:
    path = tmp_path / "inputoutput.html"
    path.write_text(SPHINX_PAGE, encoding="utf-8")
    doc = loaders.load(path)
    assert doc.title == "7. Input and Output \u2014 Python 3.11.2 documentation"
    text = doc.text
    assert "# 7. Input and Output\n" in text
    assert "### 7.2.1. Methods of File Objects\n" in text
    assert "json.dumps(obj)\n" in text  # an API signature loses its link too
    assert "pi.py\n" in text and "Mode characters" in text
    assert text.count("\u00b6") == 1 and "the \u00b6 sign, which stays in prose" in text
    headings = headings_of(path)
    assert "7. Input and Output > 7.2. Reading and Writing Files > 7.2.1. Methods of File Objects" \
        in headings
    assert "7. Input and Output > 7.1. Fancier Output Formatting > 7.1.1. Formatted String Literals" \
        in headings
    assert not any("\u00b6" in h for h in headings)


@pytest.mark.parametrize("heading, want", [
    # MkDocs / Python-Markdown's toc extension: the same class as Sphinx
    ('<h2 id="install">Install<a class="headerlink" href="#install" title="Permanent link">&para;</a></h2>',
     "## Install"),
    # Hugo themes and many others: a bare trailing "#"
    ('<h2 id="install">Install <a href="#install" aria-hidden="true">#</a></h2>', "## Install"),
    # rustdoc: a leading section sign
    ('<h2 id="install"><a href="#install" class="anchor">\u00a7</a>Install</h2>', "## Install"),
    # Docusaurus: a zero-width space in a hash-link
    ('<h2 id="install">Install<a href="#install" class="hash-link" aria-label="Direct link">\u200b</a></h2>',
     "## Install"),
    # GitHub: an icon-only anchor before the text
    ('<h2><a id="user-content-install" class="anchor" href="#install"><svg><path d="M0"/></svg></a>Install</h2>',
     "## Install"),
    # a heading that is itself a same-page link keeps its text
    ('<h2><a href="#install">Install</a></h2>', "## Install"),
    # a heading linking elsewhere is left alone, and so is a trailing "#" that is not a link
    ('<h2>C# <a href="https://example.org/#">#</a></h2>', "## C# #"),
])
def test_other_generators_permalinks(tmp_path: Path, heading: str, want: str) -> None:
    path = tmp_path / "page.html"
    path.write_text(f"<html><body>{heading}<p>Run the installer.</p></body></html>",
                    encoding="utf-8")
    assert loaders.load(path).text == f"{want}\n\nRun the installer."


REAL_PAGE = Path("/usr/share/doc/python3.11/html/tutorial/inputoutput.html")


def test_the_installed_python_tutorial_page_if_any(tmp_path: Path) -> None:
    # Debian's python3.11-doc; where it is not installed the faithful copy above stands in.
    path = REAL_PAGE if REAL_PAGE.is_file() else tmp_path / "inputoutput.html"
    if path != REAL_PAGE:
        path.write_text(SPHINX_PAGE, encoding="utf-8")
    doc = loaders.load(path)
    assert "\u00b6" not in "".join(line for line in doc.text.splitlines() if line.startswith("#"))
    headings = headings_of(path)
    assert any(h.startswith("7. Input and Output > 7.2. Reading and Writing Files") for h in headings)
    assert not any("\u00b6" in h for h in headings)
