"""``mmadfer distill``: a small student from a big teacher on unlabelled footage (see :func:`distill`)."""
from .agreement import agreement_report, cohen_kappa, smooth_probabilities
from .run import DistillSettings, distill, student_config
from .soft_targets import TeacherWindows, load_windows, teacher_pass

__all__ = ["distill", "DistillSettings", "student_config", "teacher_pass", "load_windows", "TeacherWindows",
           "agreement_report", "cohen_kappa", "smooth_probabilities"]
