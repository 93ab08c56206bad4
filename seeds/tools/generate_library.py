#!/usr/bin/env python3
"""Generate the shipped seed files under seeds/ from the vocabulary below.

Everything here is synthetic: the project cannot ship the real Medical
Affairs operational libraries, so it ships files of the same shape whose
counts and identifiers follow the allocation of DATA_MODEL.md section 3.

Output (relative to the seeds/ directory, overwritten on every run):
  strategic_priorities.json
  library/SP01_growth_market_access.json ... library/SP07_innovation_digital.json

The generator is deterministic: every choice is derived from a SHA-256 of
the workflow id (never from `random`, whose algorithms may change between
Python versions), so re-running it reproduces the files byte for byte.
Python 3 standard library only.

Usage:  python3 seeds/tools/generate_library.py [--check]
  --check  do not write; exit 1 if a shipped file differs from the output.
"""

import hashlib
import json
import sys
from pathlib import Path

SEEDS_DIR = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------
# Strategic priorities (DATA_MODEL section 2). Descriptions are our own.
# --------------------------------------------------------------------------

PRIORITIES = [
    ("SP01", "Growth & Market Access", "emerald", "TrendingUp",
     "Secure and widen patient access by building the clinical and economic "
     "value case that payers, HTA bodies and prescribers need."),
    ("SP02", "Scientific Excellence", "blue", "Microscope",
     "Generate, synthesise and communicate robust evidence that answers the "
     "questions clinicians and regulators actually ask."),
    ("SP03", "Stakeholder Engagement", "purple", "Users",
     "Build trusted, balanced scientific relationships with experts, "
     "healthcare professionals and patient communities."),
    ("SP04", "Compliance & Quality", "red", "Shield",
     "Keep every medical activity compliant, documented and inspection-ready "
     "without slowing legitimate scientific exchange."),
    ("SP05", "Operational Excellence", "orange", "Settings",
     "Run medical affairs on clear plans, budgets, processes and metrics so "
     "that resources follow strategic priorities."),
    ("SP06", "Talent Development", "indigo", "GraduationCap",
     "Grow the scientific, engagement and leadership capabilities of the "
     "medical affairs team."),
    ("SP07", "Innovation & Digital", "pink", "Sparkles",
     "Use digital channels, data and automation to make medical affairs "
     "faster, smarter and more useful to its stakeholders."),
]

FILE_SLUGS = {
    "SP01": "growth_market_access",
    "SP02": "scientific_excellence",
    "SP03": "stakeholder_engagement",
    "SP04": "compliance_quality",
    "SP05": "operational_excellence",
    "SP06": "talent_development",
    "SP07": "innovation_digital",
}

# Pillars exist from SP02 onward (SP01 workflows carry no pillar fields).
PILLARS = {
    "SP02": ["Evidence Generation", "Scientific Communication",
             "Medical Information", "Medical Insights"],
    "SP03": ["External Expert Engagement", "Field Medical Excellence",
             "Medical Education", "Patient & Community Partnerships"],
    "SP04": ["Content Review & Approval", "Governance & SOPs",
             "Safety & Transparency", "Audit & Inspection Readiness"],
    "SP05": ["Planning & Budgeting", "Process & Systems",
             "Vendor & Resource Management", "Performance Measurement"],
    "SP06": ["Onboarding & Certification", "Capability Building",
             "Leadership & Careers"],
    "SP07": ["Digital Engagement", "Data & Analytics", "AI & Automation",
             "Innovation Capabilities"],
}

# --------------------------------------------------------------------------
# The 105 JTBDs, in allocation order: (title, theme, topic, pillar number).
# `topic` is a noun phrase used as "the {topic}" inside task names.
# Counts per SP: 17, 19, 18, 14, 15, 8, 14.
# --------------------------------------------------------------------------

JTBDS = {
    "SP01": [
        ("Build the integrated medical plan for a launch brand", "strategy", "integrated medical plan", 0),
        ("Shape payer value evidence for a new indication", "access", "payer value evidence package", 0),
        ("Develop the global value dossier", "access", "global value dossier", 0),
        ("Prepare medical input for health technology assessment submissions", "access", "HTA submission", 0),
        ("Design the medical launch readiness programme", "strategy", "medical launch readiness plan", 0),
        ("Map unmet medical needs across the therapy area", "strategy", "unmet-need assessment", 0),
        ("Support pricing and reimbursement negotiations with clinical evidence", "access", "reimbursement evidence brief", 0),
        ("Generate real-world evidence for formulary decisions", "heor", "formulary real-world evidence study", 0),
        ("Build budget-impact and cost-effectiveness models", "heor", "cost-effectiveness model", 0),
        ("Brief market access teams on the clinical data package", "access", "clinical briefing for market access", 0),
        ("Develop the AMCP-format dossier for US payers", "access", "AMCP-format dossier", 0),
        ("Plan lifecycle evidence for a label expansion", "strategy", "label-expansion evidence plan", 0),
        ("Demonstrate population-health value to integrated delivery networks", "heor", "population-health value analysis", 0),
        ("Assess the competitive clinical landscape", "strategy", "competitive landscape assessment", 0),
        ("Provide medical input to the brand plan", "strategy", "medical section of the brand plan", 0),
        ("Prepare pre-approval information exchange with payers", "access", "pre-approval payer information pack", 0),
        ("Track market access barriers reported by the field", "insights", "access-barrier insight tracker", 0),
    ],
    "SP02": [
        ("Design the integrated evidence generation plan", "strategy", "integrated evidence generation plan", 1),
        ("Review investigator-initiated study proposals", "evidence", "investigator-initiated study programme", 1),
        ("Run a post-authorisation observational study", "evidence", "post-authorisation observational study", 1),
        ("Plan the publication strategy for the therapy area", "publications", "therapy-area publication plan", 2),
        ("Publish the pivotal trial results", "publications", "pivotal trial manuscript", 2),
        ("Prepare congress abstracts and posters", "publications", "congress abstract and poster set", 2),
        ("Maintain the scientific communication platform", "strategy", "scientific communication platform", 2),
        ("Respond to unsolicited medical information requests", "medinfo", "unsolicited request service", 3),
        ("Maintain the standard response document library", "medinfo", "standard response library", 3),
        ("Conduct systematic literature reviews", "heor", "systematic literature review", 1),
        ("Synthesise medical insights from field interactions", "insights", "field medical insight report", 4),
        ("Design and launch a disease registry", "evidence", "disease registry", 1),
        ("Perform an evidence-gap analysis", "strategy", "evidence-gap analysis", 1),
        ("Handle external requests for clinical data sharing", "compliance", "clinical data-sharing process", 1),
        ("Run an expert scientific advisory board", "experts", "scientific advisory board", 4),
        ("Prepare the congress medical plan", "education", "congress medical plan", 2),
        ("Develop plain-language summaries of publications", "publications", "plain-language summary programme", 2),
        ("Run a network meta-analysis with external partners", "heor", "network meta-analysis", 1),
        ("Manage collaborative research agreements", "evidence", "collaborative research programme", 1),
    ],
    "SP03": [
        ("Identify and profile external experts", "experts", "external expert map", 1),
        ("Build the KOL engagement plan", "experts", "KOL engagement plan", 1),
        ("Plan MSL territory coverage", "field", "MSL territory plan", 2),
        ("Prepare MSL scientific exchange materials", "field", "scientific exchange toolkit", 2),
        ("Conduct proactive scientific exchange with HCPs", "field", "proactive scientific exchange programme", 2),
        ("Capture and report field medical insights", "insights", "field insight capture process", 2),
        ("Organise a medical education symposium", "education", "medical education symposium", 3),
        ("Manage independent medical education grants", "education", "independent medical education grant cycle", 3),
        ("Partner with patient advocacy organisations", "experts", "patient advocacy partnership", 4),
        ("Run a steering committee for a clinical programme", "experts", "clinical programme steering committee", 1),
        ("Train external faculty for medical education programmes", "training", "external faculty training", 3),
        ("Engage academic centres on research collaboration", "experts", "academic research collaboration", 1),
        ("Support trial recruitment through medical outreach", "field", "trial recruitment outreach", 2),
        ("Run the medical booth at a major congress", "education", "congress medical booth", 3),
        ("Conduct an HCP stakeholder perception survey", "insights", "stakeholder perception survey", 1),
        ("Engage guideline committees with new evidence", "experts", "guideline committee engagement", 1),
        ("Respond to HCP questions after a congress data release", "medinfo", "post-congress response plan", 2),
        ("Coordinate medical account planning with key centres", "field", "key medical centre account plan", 2),
    ],
    "SP04": [
        ("Run medical-legal-regulatory review of materials", "compliance", "MLR review process", 1),
        ("Maintain the medical affairs SOPs", "compliance", "medical affairs SOP set", 2),
        ("Prepare for a medical affairs audit or inspection", "compliance", "audit readiness programme", 4),
        ("Determine fair-market-value payments for HCP services", "compliance", "HCP fair-market-value process", 3),
        ("Report transfers of value to healthcare professionals", "compliance", "transfer-of-value disclosure", 3),
        ("Route adverse events from medical interactions to pharmacovigilance", "compliance", "adverse event reconciliation", 3),
        ("Deliver compliance training to field medical", "training", "field medical compliance curriculum", 2),
        ("Manage corrective and preventive actions from audit findings", "compliance", "CAPA programme", 4),
        ("Review grant and sponsorship requests for compliance", "compliance", "grant and sponsorship review", 1),
        ("Monitor field medical activities for compliance", "compliance", "field medical monitoring plan", 4),
        ("Maintain the controlled-document system", "operations", "controlled-document system", 2),
        ("Govern responses to off-label information requests", "medinfo", "off-label request governance", 1),
        ("Assess the data-privacy impact of medical projects", "compliance", "data-privacy impact assessment", 3),
        ("Quality-review medical information responses", "medinfo", "medical information quality review", 4),
    ],
    "SP05": [
        ("Build the annual medical affairs budget", "operations", "annual medical affairs budget", 1),
        ("Define medical affairs KPIs and dashboards", "operations", "medical affairs KPI framework", 4),
        ("Manage agencies and vendors for medical projects", "operations", "medical vendor panel", 3),
        ("Run the medical affairs operating-plan cycle", "strategy", "medical affairs operating plan", 1),
        ("Standardise medical review workflows", "operations", "medical review workflow", 2),
        ("Implement a medical CRM", "digital", "medical CRM", 2),
        ("Optimise medical information contact-centre operations", "operations", "medical information contact centre", 2),
        ("Allocate medical affairs resources across brands", "operations", "resource allocation model", 3),
        ("Run a lean process-improvement initiative", "operations", "process-improvement initiative", 2),
        ("Consolidate medical content management", "digital", "medical content repository", 2),
        ("Coordinate cross-functional launch governance", "strategy", "launch governance framework", 1),
        ("Track and report medical affairs impact", "insights", "medical affairs impact report", 4),
        ("Manage contracts and purchase orders for medical activities", "operations", "medical contracting process", 3),
        ("Plan medical affairs headcount", "operations", "headcount plan", 3),
        ("Run quarterly business reviews for medical affairs", "operations", "quarterly business review", 4),
    ],
    "SP06": [
        ("Onboard new medical science liaisons", "training", "MSL onboarding programme", 1),
        ("Build therapeutic-area training curricula", "training", "therapeutic-area curriculum", 2),
        ("Certify field medical on scientific content", "training", "scientific content certification", 1),
        ("Develop medical affairs leadership skills", "talent", "leadership development programme", 3),
        ("Run a competency assessment for the medical team", "training", "medical competency assessment", 2),
        ("Define career paths for medical affairs roles", "talent", "medical affairs career framework", 3),
        ("Build scientific communication and engagement skills", "training", "scientific engagement skills programme", 2),
        ("Run a mentoring programme for medical staff", "talent", "mentoring programme", 3),
    ],
    "SP07": [
        ("Launch an omnichannel medical engagement pilot", "digital", "omnichannel engagement pilot", 1),
        ("Build a medical insights analytics platform", "digital", "insights analytics platform", 2),
        ("Apply AI to literature surveillance", "digital", "AI literature surveillance tool", 3),
        ("Deploy a medical information virtual assistant for HCPs", "digital", "medical information virtual assistant", 3),
        ("Run virtual advisory boards", "experts", "virtual advisory board", 1),
        ("Develop a digital medical education portal", "digital", "medical education portal", 1),
        ("Support decentralised data collection for real-world studies", "evidence", "decentralised real-world study", 4),
        ("Apply natural-language processing to field insights", "digital", "NLP insight classifier", 3),
        ("Automate medical content production", "digital", "content automation pipeline", 3),
        ("Evaluate digital health partnerships", "strategy", "digital health partnership assessment", 4),
        ("Set up governance for the medical data lake", "compliance", "medical data lake governance model", 2),
        ("Deliver webinars and virtual congress coverage", "education", "virtual congress programme", 1),
        ("Measure digital engagement effectiveness", "insights", "digital engagement measurement", 2),
        ("Run an innovation sprint for medical affairs", "digital", "innovation sprint", 4),
    ],
}

# The six second workflows (DATA_MODEL section 3), keyed by JTBD number.
EXTRA_B = {
    1: "Integrated medical plan – mid-year refresh",
    2: "Payer value evidence package – affiliate adaptation",
    18: "Integrated evidence generation plan – gap re-prioritisation",
    37: "External expert map – emerging expert identification",
    55: "MLR review process – expedited review route",
    69: "Annual medical affairs budget – quarterly reforecast",
}

# --------------------------------------------------------------------------
# Themes. Each has a lead role, a workflow-name suffix and three core phases
# of tasks: (task name, owner or None for the theme lead, outputs, tools).
# --------------------------------------------------------------------------

T = tuple  # compact task rows below

THEMES = {
    "strategy": {
        "lead": "Medical Director",
        "suffix": "planning cycle",
        "phases": [
            ("Situation Analysis", [
                T(["Review the disease-area landscape for the {topic}", None, ["Landscape summary"], ["PubMed", "Competitive intelligence database"]]),
                T(["Consolidate field medical insights relevant to the {topic}", "MSL Lead", ["Insight digest"], ["Veeva CRM", "Power BI"]]),
                T(["Map unmet medical needs and evidence gaps", "Medical Advisor", ["Unmet-need map", "Evidence-gap list"], ["Excel", "Miro"]]),
                T(["Benchmark competitor medical activities", "Medical Advisor", ["Competitor activity grid"], ["Competitive intelligence database", "PowerPoint"]]),
                T(["Interview internal stakeholders on priorities", None, ["Interview notes"], ["Microsoft Teams"]]),
            ]),
            ("Strategy Definition", [
                T(["Draft strategic imperatives for the {topic}", None, ["Strategic imperatives"], ["PowerPoint"]]),
                T(["Define medical objectives and tactics", "Medical Advisor", ["Objectives and tactics table"], ["Excel"]]),
                T(["Align imperatives with brand and access teams", None, ["Alignment minutes"], ["Microsoft Teams"]]),
                T(["Estimate resource and budget needs", "Medical Operations Manager", ["Budget estimate"], ["Excel", "SAP"]]),
                T(["Prioritise tactics by impact and feasibility", "Medical Advisor", ["Prioritisation matrix"], ["Excel", "Miro"]]),
            ]),
            ("Plan Documentation", [
                T(["Write the {topic} document", "Medical Advisor", ["Draft plan"], ["Word", "SharePoint"]]),
                T(["Build the tactical calendar", "Medical Affairs Project Manager", ["Tactical calendar"], ["Smartsheet"]]),
                T(["Define KPIs for each objective", "Medical Operations Manager", ["KPI sheet"], ["Excel", "Power BI"]]),
                T(["Circulate the draft for cross-functional comment", "Medical Affairs Project Manager", ["Comment log"], ["SharePoint"]]),
                T(["Finalise the plan and executive summary", None, ["Final plan", "Executive summary"], ["Word", "PowerPoint"]]),
            ]),
        ],
    },
    "access": {
        "lead": "Market Access Medical Lead",
        "suffix": "development and submission",
        "phases": [
            ("Evidence Assembly", [
                T(["Compile efficacy and safety data for the {topic}", "Medical Advisor", ["Evidence tables"], ["Excel", "Clinical study reports"]]),
                T(["Run a targeted literature search on comparators", "Medical Information Scientist", ["Search strategy", "Included-study list"], ["PubMed", "Embase"]]),
                T(["Extract burden-of-illness data", "HEOR Manager", ["Burden-of-illness summary"], ["Embase", "Excel"]]),
                T(["Identify relevant HTA precedents", None, ["HTA precedent review"], ["HTA agency websites", "Excel"]]),
                T(["Confirm data cut-offs with clinical development", "Clinical Scientist", ["Data cut-off memo"], ["Microsoft Teams"]]),
            ]),
            ("Value Narrative Development", [
                T(["Draft the value story for the {topic}", None, ["Value story draft"], ["PowerPoint"]]),
                T(["Develop objection handlers for payer questions", None, ["Objection handler"], ["Word"]]),
                T(["Align clinical claims with the label", "Medical Director", ["Claims matrix"], ["Excel"]]),
                T(["Integrate economic model outputs", "HEOR Manager", ["Economic results summary"], ["Excel", "TreeAge Pro"]]),
                T(["Test the narrative with payer advisors", "Market Access Manager", ["Payer advisor feedback"], ["Microsoft Teams", "Survey tool"]]),
            ]),
            ("Dossier Preparation & Submission", [
                T(["Write the clinical sections of the {topic}", "Medical Writer", ["Clinical sections"], ["Word", "EndNote"]]),
                T(["Quality-check references and data points", "Medical Writer", ["QC checklist"], ["EndNote", "Excel"]]),
                T(["Prepare responses to agency clarification questions", None, ["Clarification responses"], ["Word"]]),
                T(["Coordinate affiliate adaptations", "Market Access Manager", ["Adaptation tracker"], ["Smartsheet", "SharePoint"]]),
                T(["Submit the final package", "Market Access Manager", ["Submission receipt"], ["Agency submission portal"]]),
            ]),
        ],
    },
    "heor": {
        "lead": "HEOR Manager",
        "suffix": "analysis and reporting",
        "phases": [
            ("Study Conceptualisation", [
                T(["Define the decision problem for the {topic}", None, ["Decision problem statement"], ["Word"]]),
                T(["Select the model structure and time horizon", "Health Economist", ["Model concept document"], ["TreeAge Pro", "Excel"]]),
                T(["Identify input parameters and their sources", "Health Economist", ["Parameter list"], ["Excel", "Embase"]]),
                T(["Validate the concept with clinical experts", "Medical Advisor", ["Expert validation notes"], ["Microsoft Teams"]]),
            ]),
            ("Data Analysis", [
                T(["Obtain real-world data access approvals", "RWE Scientist", ["Data access agreement"], ["Data governance portal"]]),
                T(["Write the statistical analysis plan", "Biostatistician", ["Statistical analysis plan"], ["Word", "SAS"]]),
                T(["Extract and clean the analysis dataset", "Data Analyst", ["Analysis dataset"], ["SQL", "R"]]),
                T(["Run base-case and sensitivity analyses", "Health Economist", ["Results tables", "Tornado diagram"], ["R", "Excel"]]),
                T(["Quality-control code and outputs", "Biostatistician", ["QC log"], ["R", "SAS"]]),
            ]),
            ("Interpretation & Communication", [
                T(["Interpret results against the value proposition", None, ["Interpretation memo"], ["Word"]]),
                T(["Draft the technical report for the {topic}", "Health Economist", ["Technical report"], ["Word"]]),
                T(["Prepare payer-ready summary slides", None, ["Summary slide deck"], ["PowerPoint"]]),
                T(["Plan external publication of the results", "Publications Manager", ["Publication plan entry"], ["Datavision"]]),
                T(["Brief market access and medical teams", None, ["Briefing recording"], ["Microsoft Teams"]]),
            ]),
        ],
    },
    "evidence": {
        "lead": "Evidence Generation Lead",
        "suffix": "concept to results",
        "phases": [
            ("Study Concept", [
                T(["Formulate the research question for the {topic}", None, ["Research question"], ["Word"]]),
                T(["Assess feasibility across countries and sites", "Clinical Operations Manager", ["Feasibility report"], ["Site feasibility survey", "Excel"]]),
                T(["Draft the study synopsis", "Medical Advisor", ["Study synopsis"], ["Word"]]),
                T(["Estimate budget and timelines", "Medical Operations Manager", ["Study budget"], ["Excel"]]),
                T(["Present the concept to the evidence review committee", None, ["Committee decision"], ["PowerPoint"]]),
            ]),
            ("Protocol & Start-up", [
                T(["Write the protocol", "Medical Advisor", ["Protocol v1.0"], ["Word"]]),
                T(["Develop the statistical analysis plan", "Biostatistician", ["Statistical analysis plan"], ["SAS", "Word"]]),
                T(["Design the electronic case report form", "Data Manager", ["eCRF specification"], ["EDC system"]]),
                T(["Obtain ethics and regulatory approvals", "Clinical Operations Manager", ["Ethics approvals"], ["Regulatory submission portal"]]),
                T(["Contract sites and vendors", "Clinical Operations Manager", ["Executed contracts"], ["Contract management system"]]),
            ]),
            ("Conduct & Reporting", [
                T(["Monitor enrolment and data quality", "Clinical Operations Manager", ["Enrolment dashboard"], ["EDC system", "Power BI"]]),
                T(["Review safety signals with pharmacovigilance", "Drug Safety Physician", ["Safety review minutes"], ["Safety database"]]),
                T(["Lock the database and run analyses", "Biostatistician", ["Tables, listings and figures"], ["SAS"]]),
                T(["Write the clinical study report", "Medical Writer", ["Clinical study report"], ["Word"]]),
                T(["Disseminate results from the {topic}", "Publications Manager", ["Abstract", "Manuscript plan"], ["Datavision"]]),
            ]),
        ],
    },
    "publications": {
        "lead": "Publications Manager",
        "suffix": "planning to publication",
        "phases": [
            ("Publication Planning", [
                T(["Gap-analyse the publication plan for the {topic}", None, ["Gap analysis"], ["Datavision", "Excel"]]),
                T(["Prioritise target journals and congresses", None, ["Target journal list"], ["Journal selector", "Excel"]]),
                T(["Confirm authorship against ICMJE criteria", None, ["Authorship agreement"], ["Datavision"]]),
                T(["Brief the medical writing agency", None, ["Agency brief"], ["Word"]]),
                T(["Publish the annual publication calendar", None, ["Publication calendar"], ["Datavision", "SharePoint"]]),
            ]),
            ("Drafting & Author Review", [
                T(["Agree the outline with the lead author", "Medical Writer", ["Approved outline"], ["Word"]]),
                T(["Draft the text for the {topic}", "Medical Writer", ["First draft"], ["Word", "EndNote"]]),
                T(["Collate author comments", "Medical Writer", ["Comment matrix"], ["Word", "Microsoft Teams"]]),
                T(["Verify data against source tables", "Biostatistician", ["Data verification report"], ["SAS", "Excel"]]),
                T(["Run the internal scientific review", "Medical Director", ["Scientific review sign-off"], ["Veeva Vault MedComms"]]),
            ]),
            ("Submission & Post-publication", [
                T(["Format to journal or congress requirements", "Medical Writer", ["Submission-ready file"], ["Word", "Journal portal"]]),
                T(["Submit and track peer review", None, ["Submission record"], ["Journal portal", "Datavision"]]),
                T(["Respond to reviewer comments", "Medical Writer", ["Response letter"], ["Word"]]),
                T(["Create a plain-language summary", "Medical Writer", ["Plain-language summary"], ["Word", "InDesign"]]),
                T(["Add the publication to the field reference library", "Medical Information Manager", ["Reference library entry"], ["Veeva Vault MedComms"]]),
            ]),
        ],
    },
    "medinfo": {
        "lead": "Medical Information Manager",
        "suffix": "request handling",
        "phases": [
            ("Intake & Triage", [
                T(["Log incoming enquiries for the {topic}", "Medical Information Specialist", ["Enquiry records"], ["Medical information system"]]),
                T(["Classify enquiries by product and topic", "Medical Information Specialist", ["Classified enquiry queue"], ["Medical information system"]]),
                T(["Screen for adverse events and product complaints", "Medical Information Specialist", ["AE and complaint referrals"], ["Safety database"]]),
                T(["Prioritise urgent clinical requests", None, ["Priority list"], ["Medical information system"]]),
            ]),
            ("Response Development", [
                T(["Search the literature and internal data", "Medical Information Scientist", ["Search results"], ["PubMed", "Embase", "Internal data repository"]]),
                T(["Draft the standard response document", "Medical Information Scientist", ["Draft standard response"], ["Word", "Veeva Vault MedComms"]]),
                T(["Medically review the response", "Medical Advisor", ["Reviewed response"], ["Veeva Vault MedComms"]]),
                T(["Approve and publish to the response library", None, ["Approved standard response"], ["Veeva Vault MedComms"]]),
                T(["Tailor the response to the individual enquiry", "Medical Information Specialist", ["Tailored response letter"], ["Medical information system"]]),
            ]),
            ("Trend Analysis & Feedback", [
                T(["Analyse enquiry volumes and themes", "Medical Insights Analyst", ["Enquiry trend report"], ["Power BI"]]),
                T(["Identify content gaps in the response library", None, ["Content gap list"], ["Excel"]]),
                T(["Share insights from the {topic} with brand and medical teams", None, ["Insight summary"], ["PowerPoint"]]),
                T(["Update FAQs on the medical website", "Digital Medical Lead", ["Updated FAQ page"], ["Content management system"]]),
                T(["Review response-time KPIs", "Medical Operations Manager", ["Response-time KPI report"], ["Power BI"]]),
            ]),
        ],
    },
    "insights": {
        "lead": "Medical Insights Lead",
        "suffix": "insight cycle",
        "phases": [
            ("Insight Collection", [
                T(["Define key insight questions for the {topic}", None, ["Key insight questions"], ["Word"]]),
                T(["Configure insight capture fields in the CRM", "Medical CRM Administrator", ["CRM configuration"], ["Veeva CRM"]]),
                T(["Brief MSLs on insight capture standards", "MSL Lead", ["Briefing deck"], ["PowerPoint", "Microsoft Teams"]]),
                T(["Collect insights from advisory boards and congresses", "Medical Advisor", ["Insight log"], ["Excel"]]),
            ]),
            ("Analysis & Synthesis", [
                T(["Code free-text insights by theme", "Medical Insights Analyst", ["Coded insight dataset"], ["NVivo", "Excel"]]),
                T(["Quantify theme frequency and trends", "Medical Insights Analyst", ["Trend charts"], ["Power BI"]]),
                T(["Synthesise actionable insights", None, ["Insight synthesis"], ["PowerPoint"]]),
                T(["Validate the interpretation with medical leadership", "Medical Director", ["Validated insights"], ["Microsoft Teams"]]),
                T(["Link insights to strategic imperatives", None, ["Insight-to-imperative map"], ["Excel"]]),
            ]),
            ("Action & Follow-up", [
                T(["Recommend actions to cross-functional owners", None, ["Action recommendations"], ["PowerPoint"]]),
                T(["Track actions to closure", "Medical Affairs Project Manager", ["Action tracker"], ["Smartsheet"]]),
                T(["Feed outcomes back to the field", "MSL Lead", ["Field feedback note"], ["Veeva CRM", "Email"]]),
                T(["Publish the {topic} to stakeholders", None, ["Insights report"], ["Power BI", "SharePoint"]]),
            ]),
        ],
    },
    "experts": {
        "lead": "MSL Lead",
        "suffix": "engagement cycle",
        "phases": [
            ("Expert Identification", [
                T(["Define selection criteria for the {topic}", "Medical Director", ["Selection criteria"], ["Word"]]),
                T(["Screen publications, trials and guideline authorship", "Medical Insights Analyst", ["Expert long-list"], ["PubMed", "ClinicalTrials.gov"]]),
                T(["Profile experts and their scientific interests", "MSL", ["Expert profiles"], ["Veeva CRM"]]),
                T(["Check fair-market-value tier and conflicts of interest", "Medical Compliance Lead", ["FMV assessment"], ["FMV calculator"]]),
                T(["Agree the final participant list", None, ["Approved participant list"], ["Excel"]]),
            ]),
            ("Engagement Planning", [
                T(["Define engagement objectives per participant", None, ["Engagement objectives"], ["Veeva CRM"]]),
                T(["Plan the agenda and discussion questions", "Medical Advisor", ["Agenda", "Discussion guide"], ["Word"]]),
                T(["Contract participants and agree honoraria", "Medical Operations Manager", ["Signed consultancy agreements"], ["Contract management system"]]),
                T(["Prepare pre-read materials", "Medical Advisor", ["Pre-read pack"], ["PowerPoint", "Veeva Vault MedComms"]]),
                T(["Arrange logistics with the meeting agency", "Medical Affairs Project Manager", ["Logistics plan"], ["Event management platform"]]),
            ]),
            ("Execution & Follow-up", [
                T(["Chair and facilitate the {topic} meeting", "Medical Director", ["Meeting record"], ["Microsoft Teams"]]),
                T(["Capture advice and insights", "MSL", ["Meeting minutes", "Insight log"], ["Veeva CRM"]]),
                T(["Write the meeting report", "Medical Advisor", ["Meeting report"], ["Word"]]),
                T(["Follow up on agreed actions", "MSL", ["Follow-up log"], ["Veeva CRM"]]),
                T(["Record transfers of value", "Medical Compliance Lead", ["Transparency record"], ["Transparency reporting system"]]),
            ]),
        ],
    },
    "field": {
        "lead": "MSL Lead",
        "suffix": "field execution",
        "phases": [
            ("Territory & Target Planning", [
                T(["Segment accounts and HCPs for the {topic}", None, ["Account segmentation"], ["Veeva CRM", "Excel"]]),
                T(["Define territory alignment and call plan", "Field Medical Director", ["Territory map", "Call plan"], ["Veeva CRM", "Territory planning tool"]]),
                T(["Set field medical objectives", "Field Medical Director", ["Field objectives"], ["PowerPoint"]]),
                T(["Align with key account managers on shared accounts", None, ["Account alignment notes"], ["Veeva CRM"]]),
            ]),
            ("Scientific Exchange Preparation", [
                T(["Develop scientific slide decks", "Medical Advisor", ["Approved slide deck"], ["PowerPoint", "Veeva Vault MedComms"]]),
                T(["Prepare FAQs and reactive Q&A", "Medical Advisor", ["FAQ document"], ["Word"]]),
                T(["Train MSLs on the new data", None, ["Training attendance record"], ["Learning management system"]]),
                T(["Certify MSLs on the content", "Medical Training Manager", ["Certification records"], ["Learning management system"]]),
                T(["Load approved content to the field tablet app", "Medical CRM Administrator", ["Published content"], ["Veeva CRM"]]),
            ]),
            ("Field Execution & Reporting", [
                T(["Conduct scientific exchange meetings", "MSL", ["Interaction records"], ["Veeva CRM"]]),
                T(["Document interactions and insights", "MSL", ["CRM entries"], ["Veeva CRM"]]),
                T(["Route unsolicited requests to medical information", "MSL", ["Medical information referrals"], ["Medical information system"]]),
                T(["Review field KPIs for the {topic}", None, ["Field KPI dashboard"], ["Power BI"]]),
                T(["Coach MSLs through field visits", "Field Medical Director", ["Coaching reports"], ["Veeva CRM"]]),
            ]),
        ],
    },
    "education": {
        "lead": "Medical Education Manager",
        "suffix": "programme delivery",
        "phases": [
            ("Needs Assessment", [
                T(["Assess educational needs for the {topic}", None, ["Needs assessment"], ["Survey tool", "PubMed"]]),
                T(["Review guideline changes and practice gaps", "Medical Advisor", ["Practice-gap summary"], ["PubMed"]]),
                T(["Define learning objectives", None, ["Learning objectives"], ["Word"]]),
                T(["Select format and channels", None, ["Format proposal"], ["PowerPoint"]]),
            ]),
            ("Programme Development", [
                T(["Recruit scientific faculty", "Medical Director", ["Faculty list"], ["Veeva CRM"]]),
                T(["Develop the scientific agenda", None, ["Scientific agenda"], ["Word"]]),
                T(["Review faculty slides for scientific accuracy", "Medical Advisor", ["Reviewed slides"], ["Veeva Vault PromoMats"]]),
                T(["Submit for accreditation or grant review", None, ["Accreditation application"], ["Grants management system"]]),
                T(["Brief the event agency", "Medical Affairs Project Manager", ["Agency brief"], ["Event management platform"]]),
            ]),
            ("Delivery & Evaluation", [
                T(["Deliver the {topic}", None, ["Delivered sessions"], ["Webinar platform"]]),
                T(["Collect attendee evaluations", None, ["Evaluation data"], ["Survey tool"]]),
                T(["Measure knowledge change with pre- and post-tests", "Medical Insights Analyst", ["Outcomes analysis"], ["Excel", "Power BI"]]),
                T(["Reconcile the programme budget", "Medical Operations Manager", ["Budget reconciliation"], ["SAP"]]),
                T(["Write the outcomes report", None, ["Outcomes report"], ["Word"]]),
            ]),
        ],
    },
    "compliance": {
        "lead": "Medical Compliance Lead",
        "suffix": "control and assurance",
        "phases": [
            ("Requirement Review", [
                T(["Review applicable codes and regulations for the {topic}", None, ["Requirements checklist"], ["Regulatory intelligence database"]]),
                T(["Map the current process against requirements", "Medical Governance Manager", ["Gap assessment"], ["Visio", "Excel"]]),
                T(["Rate the risk of identified gaps", None, ["Risk register"], ["Excel"]]),
                T(["Consult legal and privacy functions", "Legal Counsel", ["Legal opinion"], ["Microsoft Teams"]]),
            ]),
            ("Control Implementation", [
                T(["Draft or revise the SOP", "Medical Governance Manager", ["SOP draft"], ["Word", "Document management system"]]),
                T(["Define review and approval checkpoints", None, ["Approval matrix"], ["Veeva Vault PromoMats"]]),
                T(["Build the monitoring checklist", None, ["Monitoring checklist"], ["Excel"]]),
                T(["Train affected staff on the new controls", "Medical Training Manager", ["Training records"], ["Learning management system"]]),
                T(["Release the controlled document", "Quality Assurance Manager", ["Effective SOP"], ["Document management system"]]),
            ]),
            ("Monitoring & Audit Readiness", [
                T(["Sample-check completed activities", None, ["Monitoring report"], ["Excel"]]),
                T(["Log deviations and open CAPAs", "Quality Assurance Manager", ["CAPA records"], ["Quality management system"]]),
                T(["Prepare the inspection-ready file for the {topic}", "Medical Governance Manager", ["Inspection-ready file"], ["Document management system"]]),
                T(["Run a mock audit", "Quality Assurance Manager", ["Mock audit report"], ["Quality management system"]]),
                T(["Report compliance status to the governance board", None, ["Compliance dashboard"], ["Power BI"]]),
            ]),
        ],
    },
    "operations": {
        "lead": "Medical Operations Manager",
        "suffix": "operating cycle",
        "phases": [
            ("Baseline & Requirements", [
                T(["Collect current-state data for the {topic}", None, ["Baseline dataset"], ["Excel", "SAP"]]),
                T(["Interview functional leads on their needs", None, ["Requirements log"], ["Microsoft Teams"]]),
                T(["Map the current process", "Process Excellence Lead", ["Current-state process map"], ["Visio"]]),
                T(["Identify bottlenecks and rework", "Process Excellence Lead", ["Issue list"], ["Miro"]]),
            ]),
            ("Design & Planning", [
                T(["Design the target state for the {topic}", None, ["Target-state design"], ["PowerPoint", "Visio"]]),
                T(["Build the budget and resource plan", "Finance Business Partner", ["Budget and resource plan"], ["SAP", "Excel"]]),
                T(["Select vendors through competitive bid", "Procurement Manager", ["Vendor selection memo"], ["Procurement system"]]),
                T(["Define KPIs and reporting cadence", None, ["KPI framework"], ["Power BI"]]),
                T(["Secure leadership approval", "Head of Medical Affairs", ["Approval decision"], ["PowerPoint"]]),
            ]),
            ("Implementation & Tracking", [
                T(["Roll out the new process or tool", None, ["Go-live checklist"], ["Smartsheet"]]),
                T(["Track spend against budget monthly", "Finance Business Partner", ["Variance report"], ["SAP", "Excel"]]),
                T(["Run quarterly vendor performance reviews", "Procurement Manager", ["Vendor scorecard"], ["Excel"]]),
                T(["Publish the operations dashboard", None, ["Operations dashboard"], ["Power BI"]]),
                T(["Capture improvement ideas for the next cycle", "Process Excellence Lead", ["Improvement backlog"], ["Smartsheet"]]),
            ]),
        ],
    },
    "training": {
        "lead": "Medical Training Manager",
        "suffix": "curriculum delivery",
        "phases": [
            ("Capability Assessment", [
                T(["Define the competency framework for the {topic}", None, ["Competency framework"], ["Excel"]]),
                T(["Assess current capability levels", None, ["Capability gap report"], ["Survey tool", "Learning management system"]]),
                T(["Interview line managers on development needs", "Field Medical Director", ["Manager input summary"], ["Microsoft Teams"]]),
                T(["Prioritise learning needs", None, ["Learning priorities"], ["Excel"]]),
            ]),
            ("Curriculum Design", [
                T(["Design the curriculum and learning paths", None, ["Curriculum outline"], ["Learning management system"]]),
                T(["Develop e-learning modules", "Instructional Designer", ["E-learning modules"], ["Articulate 360"]]),
                T(["Write case studies and role-plays", "Medical Advisor", ["Case studies"], ["Word"]]),
                T(["Medically review the training content", "Medical Director", ["Reviewed content"], ["Veeva Vault MedComms"]]),
                T(["Schedule workshops and faculty", "Medical Affairs Project Manager", ["Training schedule"], ["Outlook calendar"]]),
            ]),
            ("Delivery & Certification", [
                T(["Deliver workshops and virtual sessions", None, ["Attendance records"], ["Microsoft Teams", "Learning management system"]]),
                T(["Run knowledge assessments", None, ["Assessment results"], ["Learning management system"]]),
                T(["Conduct role-play certification", "MSL Lead", ["Certification scorecards"], ["Learning management system"]]),
                T(["Give individual development feedback", "Field Medical Director", ["Individual development plans"], ["HR performance system"]]),
                T(["Evaluate the effectiveness of the {topic}", None, ["Training effectiveness evaluation"], ["Survey tool", "Power BI"]]),
            ]),
        ],
    },
    "talent": {
        "lead": "Head of Medical Affairs",
        "suffix": "programme cycle",
        "phases": [
            ("Talent Review", [
                T(["Review role profiles and career levels", "HR Business Partner", ["Role profiles"], ["HR performance system"]]),
                T(["Identify high-potential talent", None, ["Talent pool list"], ["HR performance system"]]),
                T(["Assess succession risk for critical roles", "HR Business Partner", ["Succession plan"], ["Excel"]]),
                T(["Survey development preferences for the {topic}", "Medical Training Manager", ["Preference survey results"], ["Survey tool"]]),
            ]),
            ("Programme Design", [
                T(["Design the structure of the {topic}", "Medical Training Manager", ["Programme design"], ["PowerPoint"]]),
                T(["Match participants with mentors and sponsors", "HR Business Partner", ["Pairing list"], ["Excel"]]),
                T(["Define development milestones", "Medical Training Manager", ["Milestone plan"], ["Smartsheet"]]),
                T(["Secure sponsorship from the leadership team", None, ["Sponsor commitment"], ["PowerPoint"]]),
                T(["Announce the programme to staff", "Medical Affairs Communications Lead", ["Programme announcement"], ["SharePoint", "Email"]]),
            ]),
            ("Execution & Review", [
                T(["Run the programme sessions", "Medical Training Manager", ["Session records"], ["Microsoft Teams"]]),
                T(["Hold mid-point check-ins", "HR Business Partner", ["Check-in notes"], ["HR performance system"]]),
                T(["Track promotions and internal moves", "HR Business Partner", ["Mobility report"], ["HR performance system"]]),
                T(["Collect participant feedback", "Medical Training Manager", ["Feedback summary"], ["Survey tool"]]),
                T(["Report programme outcomes to leadership", None, ["Programme review"], ["PowerPoint"]]),
            ]),
        ],
    },
    "digital": {
        "lead": "Digital Medical Lead",
        "suffix": "discovery to scale",
        "phases": [
            ("Discovery", [
                T(["Define the use case and success criteria for the {topic}", None, ["Use-case canvas"], ["Miro"]]),
                T(["Research HCP digital preferences", "Medical Insights Analyst", ["User research findings"], ["Survey tool"]]),
                T(["Inventory data sources and integration needs", "Medical Data Scientist", ["Data source inventory"], ["Excel"]]),
                T(["Assess privacy and compliance constraints", "Data Privacy Officer", ["Privacy impact assessment"], ["Privacy assessment tool"]]),
                T(["Build the business case", None, ["Business case"], ["PowerPoint", "Excel"]]),
            ]),
            ("Build & Validate", [
                T(["Write user stories and acceptance criteria", "Product Owner – Medical Digital", ["Product backlog"], ["Jira"]]),
                T(["Configure or develop the solution", "IT Solution Architect", ["Working increment"], ["Jira", "Cloud platform"]]),
                T(["Train and evaluate models or rules", "Medical Data Scientist", ["Model validation report"], ["Python", "Jupyter"]]),
                T(["Medically validate the outputs", "Medical Advisor", ["Medical validation sign-off"], ["Veeva Vault MedComms"]]),
                T(["Complete computer-system validation", "Quality Assurance Manager", ["CSV documentation"], ["Quality management system"]]),
            ]),
            ("Pilot & Scale", [
                T(["Pilot the {topic} with selected users", None, ["Pilot results"], ["Analytics platform"]]),
                T(["Measure adoption and engagement", "Medical Data Scientist", ["Engagement analytics"], ["Power BI", "Web analytics"]]),
                T(["Collect user feedback and iterate", "Product Owner – Medical Digital", ["Iteration backlog"], ["Jira"]]),
                T(["Decide on scale-up with the governance board", "Head of Medical Affairs", ["Scale-up decision"], ["PowerPoint"]]),
                T(["Hand over to the run-and-maintain team", "IT Solution Architect", ["Support model"], ["ServiceNow"]]),
            ]),
        ],
    },
}

# Generic phases wrapped around the three core phases of every theme.
SCOPING_NAMES = ["Initiation & Scoping", "Scoping & Alignment", "Kick-off & Planning"]
SCOPING = [
    T(["Confirm objectives and scope for the {topic}", None, ["Scope statement"], ["Word"]]),
    T(["Identify stakeholders and agree the RACI", "Medical Affairs Project Manager", ["RACI matrix"], ["Excel"]]),
    T(["Agree timelines and milestones", "Medical Affairs Project Manager", ["Project timeline"], ["Smartsheet"]]),
    T(["Confirm budget availability", "Medical Operations Manager", ["Budget confirmation"], ["SAP"]]),
    T(["Hold the cross-functional kick-off meeting", None, ["Kick-off minutes"], ["Microsoft Teams"]]),
]
REVIEW_NAMES = ["Review & Approval", "Medical Review & Sign-off", "Governance Review"]
REVIEW = [
    T(["Prepare the {topic} for review", None, ["Review package"], ["Veeva Vault MedComms"]]),
    T(["Conduct medical-legal-regulatory review", "Medical Reviewer", ["MLR comments"], ["Veeva Vault PromoMats"]]),
    T(["Resolve reviewer comments", None, ["Comment resolution log"], ["Veeva Vault MedComms"]]),
    T(["Obtain final medical sign-off", "Head of Medical Affairs", ["Signed approval"], ["Veeva Vault MedComms"]]),
    T(["Archive the approved documents", "Medical Affairs Project Manager", ["Archived record"], ["Document management system"]]),
]
CLOSE_NAMES = ["Measurement & Close-out", "Evaluation & Lessons Learned", "Impact Review"]
CLOSE = [
    T(["Compile KPI results for the {topic}", "Medical Operations Manager", ["KPI report"], ["Power BI"]]),
    T(["Assess impact against objectives", None, ["Impact assessment"], ["PowerPoint"]]),
    T(["Run a lessons-learned session", "Medical Affairs Project Manager", ["Lessons-learned log"], ["Miro"]]),
    T(["Update the playbook and templates", None, ["Updated playbook"], ["SharePoint"]]),
    T(["Report outcomes to the medical leadership team", None, ["Outcome summary"], ["PowerPoint"]]),
]

# Task effort options in hours and how they read in the files.
TASK_HOURS = [2, 3, 4, 6, 8, 12, 16, 24]
HOURS_TEXT = {2: "2 hours", 3: "3 hours", 4: "4 hours", 6: "6 hours",
              8: "1 day", 12: "1.5 days", 16: "2 days", 24: "3 days"}
# Focused hours one owner group spends on a workflow per calendar week.
HOURS_PER_WEEK = 14


def h(*parts):
    """A stable non-negative integer derived from the parts."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8"))
    return int(digest.hexdigest()[:12], 16)


def pick_subset(key, n, k):
    """k of range(n), chosen by hash rank, returned in ascending order."""
    ranked = sorted(range(n), key=lambda i: h(key, i))
    return sorted(ranked[:k])


def weeks_text(lo, hi):
    if lo == hi:
        return "1 week" if lo == 1 else f"{lo} weeks"
    return f"{lo}–{hi} weeks"


def phase_pool(theme):
    """The six candidate phases of a theme: generic, three core, generic."""
    core = THEMES[theme]["phases"]
    return [("SCOPING", SCOPING), *core, ("REVIEW", REVIEW), ("CLOSE", CLOSE)]


def build_workflow(sp, number, suffix_letter, jtbd, name_override):
    title, theme, topic, pillar_no = jtbd
    wf_id = f"WF-{number:03d}-{suffix_letter}"
    lead = THEMES[theme]["lead"]
    pool = phase_pool(theme)

    # 2-5 phases; at least one theme-specific core phase (pool indices 1-3).
    # Second ("-B") workflows are refreshes or variants of the first one:
    # shorter (2-3 phases) and made of lighter tasks.
    is_variant = suffix_letter != "A"
    k = 2 + h(wf_id, "phases") % (2 if is_variant else 4)
    hour_options = TASK_HOURS[:5] if is_variant else TASK_HOURS
    chosen = pick_subset(wf_id + "/phase", len(pool), k)
    if not any(1 <= i <= 3 for i in chosen):
        core_pick = 1 + h(wf_id, "core") % 3
        chosen = sorted(chosen[:-1] + [core_pick])

    phases = []
    task_seq = 0
    total_hours = 0
    total_lo_weeks = 0
    total_hi_weeks = 0
    for phase_no, idx in enumerate(chosen, start=1):
        name, rows = pool[idx]
        if name == "SCOPING":
            name = SCOPING_NAMES[h(wf_id, "sn") % 3]
        elif name == "REVIEW":
            name = REVIEW_NAMES[h(wf_id, "rn") % 3]
        elif name == "CLOSE":
            name = CLOSE_NAMES[h(wf_id, "cn") % 3]
        m = min(len(rows), 2 + h(wf_id, idx, "tasks") % 4)
        tasks = []
        phase_hours = 0
        for row_idx in pick_subset(f"{wf_id}/{idx}/task", len(rows), m):
            task_name, owner, outputs, tools = rows[row_idx]
            task_seq += 1
            hours = hour_options[h(wf_id, idx, row_idx, "hours") % len(hour_options)]
            phase_hours += hours
            tasks.append({
                "task_id": f"T{task_seq:03d}",
                "task_name": task_name.format(topic=topic),
                "duration": HOURS_TEXT[hours],
                "owner": owner or lead,
                "outputs": list(outputs),
                "tools": list(tools),
            })
        lo = max(1, round(phase_hours / HOURS_PER_WEEK))
        # Phases with review loops or external parties tend to slip a week.
        hi = lo + (1 if h(wf_id, idx, "slip") % 3 == 0 else 0)
        total_lo_weeks += lo
        total_hi_weeks += hi
        total_hours += phase_hours
        phases.append({
            "phase_number": phase_no,
            "phase_name": name,
            "duration": weeks_text(lo, hi),
            "tasks": tasks,
        })

    # Calendar time: phases overlap a little, hand-offs add a little back.
    wf_hi = max(total_hi_weeks, total_lo_weeks + 1)
    effort_lo = 5 * round(total_hours / 5) or 5
    effort_hi = 5 * round(total_hours * 1.3 / 5)
    if effort_hi <= effort_lo:
        effort_hi = effort_lo + 5

    if name_override:
        wf_name = name_override
    else:
        wf_name = f"{topic[0].upper()}{topic[1:]} – {THEMES[theme]['suffix']}"

    wf = {
        "workflow_id": wf_id,
        "workflow_name": wf_name,
        "jtbd_id": f"JTBD-MA-{number:03d}",
        "duration": weeks_text(total_lo_weeks, wf_hi),
        "total_effort": f"{effort_lo}–{effort_hi} hours",
        "phase_count": len(phases),
        "task_count": task_seq,
        "source": f"{sp} Operational Library",
    }
    if sp in PILLARS:
        wf["pillar"] = f"{sp}-P{pillar_no}"
        wf["pillar_name"] = PILLARS[sp][pillar_no - 1]
    wf["phases"] = phases
    return wf


def build_files():
    outputs = {}
    priorities = [
        {"code": code, "name": name, "description": desc, "color": color,
         "icon": icon, "position": pos}
        for pos, (code, name, color, icon, desc) in enumerate(PRIORITIES, start=1)
    ]
    outputs["strategic_priorities.json"] = priorities

    number = 0
    for code, *_ in PRIORITIES:
        jtbds = []
        for jtbd in JTBDS[code]:
            number += 1
            workflows = [build_workflow(code, number, "A", jtbd, None)]
            if number in EXTRA_B:
                workflows.append(build_workflow(code, number, "B", jtbd, EXTRA_B[number]))
            jtbds.append({
                "jtbd_id": f"JTBD-MA-{number:03d}",
                "title": jtbd[0],
                "workflows": workflows,
            })
        outputs[f"library/{code}_{FILE_SLUGS[code]}.json"] = {
            "strategic_priority": code,
            "source": f"{code} Operational Library",
            "jtbds": jtbds,
        }
    assert number == 105, number
    return outputs


def render(obj):
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def main(argv):
    check = "--check" in argv[1:]
    stale = []
    for rel, obj in build_files().items():
        path = SEEDS_DIR / rel
        text = render(obj)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
