"""The paper behind each merge method: what the model card links, tags and cites.

Author lists are those of the arXiv listings and of the citations the authors give in their
official repositories (wutaiqiang/Shadow-FT, wutaiqiang/Timber, wutaiqiang/MI); ParamΔ has
no official repository, its authors are those of arXiv 2504.21023 (and ICLR 2025).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """One method's paper: its arXiv id, title, card tag and BibTeX entry."""

    method: str
    arxiv_id: str
    title: str
    tag: str  # the short tag the card adds next to the method name
    bibtex: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"


PAPERS: dict[str, Paper] = {
    paper.method: paper
    for paper in (
        Paper(
            method="paramdelta",
            arxiv_id="2504.21023",
            title="ParamΔ for Direct Weight Mixing: Post-Train Large Language Model at Zero Cost",
            tag="paramdelta",
            bibtex="""@article{cao2025paramdelta,
  title={Param$\\Delta$ for Direct Weight Mixing: Post-Train Large Language Model at Zero Cost},
  author={Cao, Sheng and Wu, Mingrui and Prasad, Karthik and Tian, Yuandong and Liu, Zechun},
  journal={arXiv preprint arXiv:2504.21023},
  year={2025}
}""",
        ),
        Paper(
            method="shadow_graft",
            arxiv_id="2505.12716",
            title="Shadow-FT: Tuning Instruct via Base",
            tag="shadow-ft",
            bibtex="""@article{wu2025shadow,
  title={Shadow-FT: Tuning Instruct via Base},
  author={Wu, Taiqiang and Yang, Runming and Li, Jiayi and Hu, Pengfei and Wong, Ngai and Yang, Yujiu},
  journal={arXiv preprint arXiv:2505.12716},
  year={2025}
}""",
        ),
        Paper(
            method="timber_spectral",
            arxiv_id="2509.23595",
            title="Timber: Training-free Instruct Model Refining with Base via Effective Rank",
            tag="timber",
            bibtex="""@article{wu2025timber,
  title={Timber: Training-free Instruct Model Refining with Base via Effective Rank},
  author={Wu, Taiqiang and Yang, Runming and Liu, Tao and Wang, Jiahao and Xu, Zenan and Wong, Ngai},
  journal={arXiv preprint arXiv:2509.23595},
  year={2025}
}""",
        ),
        Paper(
            method="instruct_thinking_interp",
            arxiv_id="2510.10977",
            title="Revisiting Model Interpolation for Efficient Reasoning",
            tag="model-interpolation",
            bibtex="""@article{wu2025revisiting,
  title={Revisiting Model Interpolation for Efficient Reasoning},
  author={Wu, Taiqiang and Yang, Runming and Liu, Tao and Wang, Jiahao and Wong, Ngai},
  journal={arXiv preprint arXiv:2510.10977},
  year={2025}
}""",
        ),
    )
}
